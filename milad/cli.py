"""The ``milad`` command line: ``milad fingerprint``, ``milad invariants``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


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
        species=species,
    )


def _fingerprint(args) -> int:
    frames = _read_frames(args.input)
    descriptor = _descriptor(args)
    if args.local:
        values = np.concatenate([descriptor.local(atoms) for atoms in frames])
    else:
        values = descriptor.molecules(frames)
    np.save(args.output, values)
    kind = "atom-centred environments" if args.local else "molecules"
    print(f"{values.shape[0]} {kind} x {values.shape[1]} invariants -> {args.output}")
    return 0


def _invariants(args) -> int:
    from .invariants import load_invariants

    invariants = load_invariants(args.n_max)
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
    fingerprint.add_argument("--species", help="comma-separated species mapped onto weights in [1, 2], e.g. H,C,N,O,F; without it all weights are 1")
    fingerprint.add_argument("--feature", choices=["delta", "gaussian"], default="delta")
    fingerprint.add_argument("--sigma", type=float, help="Gaussian width in Angstrom (gaussian feature only)")
    fingerprint.add_argument("--local", action="store_true", help="one fingerprint per atom-centred environment")
    fingerprint.set_defaults(handler=_fingerprint)

    invariants = commands.add_parser(
        "invariants",
        help="size of the shipped independent invariant set",
        description="Print the size of the shipped independent Zernike invariant set for n_max "
        "and its counts per correlation order.",
    )
    invariants.add_argument("--n-max", type=int, default=7)
    invariants.add_argument("--json", action="store_true", help="print JSON")
    invariants.set_defaults(handler=_invariants)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (CommandError, ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"milad {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
