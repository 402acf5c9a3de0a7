"""The ``milad`` command line: ``milad fingerprint``, ``invariants``, ``decode``, ``compare``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .io import atomic_output, check_output_path

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class WriteError(Exception):
    """An output that could not be written (disk full, ...): one line, exit status 1."""


def _save(path: Path, write, mode: str = "wb") -> None:
    """``write(handle)`` into ``path`` atomically; a WriteError naming the file on failure
    (nothing is left under the name, or what was there stays)."""
    try:
        with atomic_output(path, mode) as handle:
            write(handle)
    except OSError as error:
        raise WriteError(f"could not write {path}: {error.strerror or error}") from error


def _read_frames(path: str):
    from ase.io import read

    if not Path(path).exists():
        raise CommandError(f"input file not found: {path}")
    try:
        return read(path, index=":")
    except Exception as error:  # ASE raises many types for unreadable files
        raise CommandError(f"could not read {path} with ASE: {error}") from error


def _descriptor(args):
    from .descriptor import Descriptor
    from .features import SpeciesMap

    species = SpeciesMap.parse(args.species) if args.species else None
    return Descriptor(
        n_max=args.n_max, cutoff=args.cutoff, feature=args.feature, sigma=args.sigma,
        species=species, chiral=args.chiral,
    )


def _fingerprint(args) -> int:
    output = check_output_path(args.output, ".npy")
    descriptor = _descriptor(args)
    frames = _read_frames(args.input)
    if not frames:
        raise CommandError(f"{args.input} holds no structures")
    empty = [i for i, atoms in enumerate(frames) if len(atoms) == 0]
    if empty:
        raise CommandError(f"{args.input}: structure {empty[0]} has no atoms "
                           f"({len(empty)} of {len(frames)} structures are empty)")
    if args.local:
        values = np.concatenate([descriptor.local(atoms) for atoms in frames])
    else:
        values = descriptor.molecules(frames)
    _save(output, lambda handle: np.save(handle, values))
    kind = "atom-centred environments" if args.local else "molecules"
    chiral = f" (the last {descriptor.n_chiral} parity-odd)" if args.chiral else ""
    print(f"{values.shape[0]} {kind} x {values.shape[1]} invariants{chiral} -> {output}")
    return 0


def _invariants(args) -> int:
    from .invariants import load_chiral_invariants, load_invariants

    invariants = load_invariants(args.n_max)
    if args.chiral:
        odd = load_chiral_invariants(args.n_max)
        summary = {
            "n_max": odd.max_order,
            "count": len(odd),
            "labels": odd.labels,
            "detects": list(odd.metadata.get("detects", {})),
            "undetected": odd.metadata.get("undetected", []),
            "terms": odd.n_terms,
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"parity-odd (chiral) invariants to n_max={odd.max_order}: {len(odd)}, appended "
                  f"after the {len(invariants)} by --chiral, {odd.n_terms} polynomial terms")
            for label in odd.labels:
                print(f"  {label}")
            print(f"  non-zero for the chiral point groups {', '.join(summary['detects'])}; "
                  f"blind to {', '.join(summary['undetected']) or 'none'}")
        return 0
    summary = {
        "n_max": invariants.max_order,
        "count": len(invariants),
        "by_correlation_order": {str(k): v for k, v in invariants.counts_by_degree().items()},
        "moments": invariants.n_moments,
        "terms": invariants.n_terms,
        "complete": bool(invariants.metadata.get("complete", False)),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"Zernike invariants to n_max={summary['n_max']}: {summary['count']} "
              f"({summary['moments']} moments - 3), {summary['terms']} polynomial terms")
        for order, count in summary["by_correlation_order"].items():
            print(f"  nu={order}: {count}")
    return 0


def _load_fingerprints(path: str, name: str) -> np.ndarray:
    if not Path(path).exists():
        raise CommandError(f"{name} file not found: {path}")
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for files that are not .npy
        raise CommandError(f"could not read {path} as a .npy array: {error}") from error
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise CommandError(f"{path} does not hold numbers: {error}") from error
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2:
        raise CommandError(f"{path} must hold one fingerprint per row, got shape {values.shape}")
    if len(values) == 0:
        raise CommandError(f"{path} holds no fingerprints (0 rows)")
    return values


def _decode(args) -> int:
    from ase.io import write

    from .decode import check_atom_count, decode
    from .descriptor import Descriptor

    output = check_output_path(args.output)
    fingerprints = _load_fingerprints(args.input, "fingerprint")
    positions = _load_fingerprints(args.positions, "positions fingerprint") if args.positions else None
    if positions is not None and positions.shape != fingerprints.shape:
        raise CommandError(
            f"--positions has shape {positions.shape}, the fingerprints {fingerprints.shape}: "
            "need one positions-only row per fingerprint"
        )
    if args.positions and not args.species:
        raise CommandError("--positions (two-fingerprint species decoding) needs --species")
    if args.attempts < 1:
        raise CommandError(f"--attempts must be at least 1, got {args.attempts}")
    descriptor = Descriptor(n_max=args.n_max, cutoff=args.cutoff, species=args.species or None,
                            chiral=args.chiral)
    if fingerprints.shape[1] != len(descriptor):
        hint = "same --n-max?"
        try:
            other = len(Descriptor(n_max=args.n_max, cutoff=args.cutoff, chiral=not args.chiral))
        except ValueError:  # no chiral set ships for this n_max
            other = None
        if fingerprints.shape[1] == other:
            hint = ("a fingerprint written with --chiral? pass --chiral" if not args.chiral else
                    "a fingerprint written without --chiral? leave --chiral out")
        raise CommandError(
            f"{args.input} has {fingerprints.shape[1]} values per row, but the descriptor has "
            f"{len(descriptor)} invariants: expected a vector of that length ({hint})")
    for name, values in (("fingerprint", fingerprints), ("positions fingerprint", positions)):
        if values is not None and not np.all(np.isfinite(values)):
            rows = np.flatnonzero(~np.all(np.isfinite(values), axis=1))
            raise CommandError(f"{name} row {rows[0]} contains NaN or infinite values "
                               f"({len(rows)} row(s) in all)")
    mode = "positions" if not args.species else ("two" if args.positions else "single")
    if args.n_atoms is not None:
        check_atom_count(args.n_atoms, descriptor, mode)
    elif mode == "single":
        raise CommandError("--n-atoms is needed when species are encoded in one fingerprint "
                           "(or give --positions)")
    frames, failed = [], []
    for row, fingerprint in enumerate(fingerprints):
        try:
            atoms, result = decode(
                fingerprint, descriptor, args.n_atoms, seed=args.seed, attempts=args.attempts,
                positions_fingerprint=None if positions is None else positions[row], tol=args.tol,
            )
        except ValueError as error:  # this row cannot be decoded: report it, go on
            failed.append((row, str(error)))
            print(f"row {row}: FAILED ({error})")
            continue
        atoms.info["row"] = row
        frames.append(atoms)
        if not result.success:
            failed.append((row, f"fingerprint RMSD {result.fingerprint_rmsd:.3e} above "
                                f"{args.tol:g}"))
        status = "success" if result.success else "FAILED"
        print(f"row {row}: {len(atoms)} atoms, fingerprint RMSD {result.fingerprint_rmsd:.3e} "
              f"{status} ({result.attempts} attempt(s), {result.timings['total']:.1f} s)",
              flush=True)
        # every finished row is on disk at once: the file grows by one frame, atomically
        _save(output, lambda handle: write(handle, frames, format="extxyz"), mode="w")
    count = len(fingerprints)
    print(f"{count - len(failed)}/{count} decoded below {args.tol:g} -> "
          f"{output if frames else 'nothing written'}")
    if failed:
        print("failed rows: " + "; ".join(f"{row} ({why})" for row, why in failed))
    return 1 if failed else 0


def _compare(args) -> int:
    from .compare import compare

    first, second = _read_frames(args.first), _read_frames(args.second)
    if len(first) != len(second) and 1 not in (len(first), len(second)):
        raise CommandError(
            f"{args.first} has {len(first)} frames and {args.second} {len(second)}: "
            "need the same number (compared in order) or a single frame on one side"
        )
    count = max(len(first), len(second))
    results = []
    for i in range(count):
        a = first[i if len(first) > 1 else 0]
        b = second[i if len(second) > 1 else 0]
        results.append(compare(a, b, seed=args.seed))
    if args.json:
        rows = [
            {"rmsd": r.rmsd, "mirror_rmsd": r.mirror_rmsd, "matched": r.matched,
             "species_aware": r.species_aware}
            for r in results
        ]
        print(json.dumps(rows[0] if count == 1 else rows))
    else:
        for i, r in enumerate(results):
            prefix = f"frame {i}: " if count > 1 else ""
            print(f"{prefix}RMSD {r.rmsd:.4f} A, mirror image {r.mirror_rmsd:.4f} A "
                  f"(matches the {r.matched}{', species-aware' if r.species_aware else ''})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milad",
        description="Moment invariants local atomic descriptors: fingerprints of atomic environments.",
    )
    parser.add_argument("--version", action="version", version=f"milad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    fingerprint = commands.add_parser(
        "fingerprint",
        help="fingerprints of every frame (molecule) or every atom-centred environment",
        description="Write MILAD fingerprints of a structure file as a .npy array: one row per "
        "frame (each molecule centred on its smallest enclosing sphere), or with --local one "
        "row per atom-centred environment.",
    )
    fingerprint.add_argument("input", help="any structure file ASE can read (xyz, extxyz, cif, ...)")
    fingerprint.add_argument("-o", "--output", required=True, help="output .npy file")
    fingerprint.add_argument("--n-max", type=int, default=7, help="highest Zernike order (default 7)")
    fingerprint.add_argument("--cutoff", type=float, default=5.0, help="cutoff radius in Angstrom (default 5)")
    fingerprint.add_argument(
        "--species",
        help="comma-separated species mapped onto weights in [1, 2], e.g. H,C,O,N,F (the "
             "paper's order, section IV A); without it all weights are 1",
    )
    fingerprint.add_argument("--feature", choices=["delta", "gaussian"], default="delta")
    fingerprint.add_argument("--sigma", type=float, help="Gaussian width in Angstrom (gaussian feature only)")
    fingerprint.add_argument("--local", action="store_true", help="one fingerprint per atom-centred environment")
    fingerprint.add_argument(
        "--chiral", action="store_true",
        help="append the parity-odd invariants after the default ones: they change sign "
             "between mirror images and vanish for achiral structures",
    )
    fingerprint.set_defaults(handler=_fingerprint)

    invariants = commands.add_parser(
        "invariants",
        help="size of the shipped independent invariant set",
        description="Print the size of the shipped independent Zernike invariant set for n_max "
        "and its counts per correlation order.",
    )
    invariants.add_argument("--n-max", type=int, default=7)
    invariants.add_argument("--json", action="store_true", help="print JSON")
    invariants.add_argument("--chiral", action="store_true",
                            help="describe the parity-odd invariants 'fingerprint --chiral' appends")
    invariants.set_defaults(handler=_invariants)

    decode = commands.add_parser(
        "decode",
        help="decode molecular fingerprints back to atoms",
        description="Decode every row of a .npy array of molecular fingerprints (as written by "
        "'milad fingerprint' with the same --n-max, --cutoff, --species and --chiral) back to atomic "
        "positions, and species with --species, writing all structures to one extxyz file "
        "(rewritten atomically after every row, so finished rows are kept; info 'row' is the "
        "input row). Prints the final fingerprint RMSD of every row and at the end the rows "
        "that failed; exits 1 when a row stays above --tol or cannot be decoded.",
    )
    decode.add_argument("input", help=".npy file of fingerprints, one row per molecule")
    decode.add_argument("-o", "--output", required=True, help="output structure file (extxyz)")
    decode.add_argument("--n-atoms", type=int, help="number of atoms of every molecule; without it the count is read off positions-only fingerprints")
    decode.add_argument("--species", help="comma-separated species mapped onto weights in [1, 2], as given to 'milad fingerprint'")
    decode.add_argument("--positions", help="second .npy of positions-only fingerprints of the same molecules: positions are decoded from it and only species from INPUT")
    decode.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    decode.add_argument("--attempts", type=int, default=3, help="random restarts per molecule (default 3)")
    decode.add_argument("--tol", type=float, default=1e-6, help="fingerprint RMSD counted as success (default 1e-6)")
    decode.add_argument("--n-max", type=int, default=7, help="highest Zernike order (default 7)")
    decode.add_argument("--cutoff", type=float, default=5.0, help="cutoff radius in Angstrom (default 5)")
    decode.add_argument(
        "--chiral", action="store_true",
        help="the fingerprints hold the parity-odd invariants ('milad fingerprint --chiral'): "
             "the decoded molecule is then the original enantiomer, not possibly its mirror image",
    )
    decode.set_defaults(handler=_decode)

    compare = commands.add_parser(
        "compare",
        help="RMSD between two molecules with unknown atom order and orientation",
        description="RMSD (Angstrom) between the structures of A and B after the best atom "
        "assignment (Hungarian, within species when both have the same composition) and "
        "rotation (RDKit AlignMol), for B and for its mirror image. Multi-frame files are "
        "compared frame by frame.",
    )
    compare.add_argument("first", metavar="A", help="structure file ASE can read")
    compare.add_argument("second", metavar="B", help="structure file ASE can read")
    compare.add_argument("--json", action="store_true", help="print JSON with keys rmsd, mirror_rmsd, matched")
    compare.add_argument("--seed", type=int, default=0, help="seed of the random starting rotations")
    compare.set_defaults(handler=_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CommandError, ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"milad {args.command}: error: {message}", file=sys.stderr)
        return 2
    except WriteError as error:
        print(f"milad {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
