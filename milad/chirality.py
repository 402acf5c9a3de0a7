"""Enantiomers: which molecules of the QM9 subset are chiral, and whether decoding the chiral
fingerprint (``Descriptor(..., chiral=True)``) returns the original enantiomer.

The default fingerprint is the same for a molecule and its mirror image, so a decode of it may
return either hand (``milad.compare.compare`` reports the RMSD to both). The chiral fingerprint
appends parity-odd invariants that change sign between the two, so a decode that reproduces the
whole fingerprint must also reproduce the hand.

One function per pipeline step (rules in ``workflow/rules/chirality.smk``):

* :func:`chiral_molecules_table`: the stereocentres of every molecule, perceived by RDKit from
  the 3D structure (bonds from the geometry, ``AssignStereochemistryFrom3D``,
  ``FindMolChiralCenters(includeUnassigned=True)``) with their CIP labels;
* :func:`run_chirality_decode`: one decode of one molecule with the chiral or the default
  fingerprint (:data:`FINGERPRINTS`), compared with the original and its mirror image; the
  hand the decode returned (:func:`hand_of`), and the CIP labels of the decoded structure;
* :func:`chirality_table`, :func:`chirality_summary`, :func:`chirality_notes`,
  :func:`chirality_markdown`: the table ``results/tables/chirality.{csv,md}``.

A decode succeeds when its fingerprint RMSD is below the threshold (1e-6, the paper's); the
issue's criterion: every successful decode of the chiral fingerprint lies within the structure
tolerance (0.01 A) of the original, not of its mirror image.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
from ase import Atoms

from .paper import DECODING_DESCRIPTOR

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "FINGERPRINTS",
    "HANDS",
    "MOLECULE_COLUMNS",
    "MODES",
    "chiral_molecules_table",
    "chirality_markdown",
    "chirality_notes",
    "chirality_summary",
    "chirality_table",
    "decode_chirality",
    "format_stereocentres",
    "hand_of",
    "mirror_image",
    "run_chirality_decode",
    "stereocentres",
]

#: the fingerprints decoded: with the parity-odd invariants, and the default one
FINGERPRINTS = ("chiral", "default")
#: decoding modes: positions only (all weights 1), or positions and species from one fingerprint
MODES = ("positions", "single")
#: columns of the molecules table (one row per molecule looked at)
MOLECULE_COLUMNS = ("qm9_id", "n_atoms", "formula", "smiles", "stereocentres", "n_stereocentres",
                    "chiral")
#: columns of the decode table (one row per molecule x fingerprint x attempt)
COLUMNS = (
    "qm9_id", "n_atoms", "formula", "smiles", "stereocentres", "fingerprint", "mode", "attempt",
    "seed", "success", "fingerprint_rmsd", "rmsd", "mirror_rmsd", "hand", "right_hand",
    "odd_sign", "decoded_stereocentres", "wall_s",
)
#: the hands a decode can have (:func:`hand_of`)
HANDS = ("original", "mirror", "either", "neither")


# ----------------------------------------------------------------------------------------
# stereocentres
# ----------------------------------------------------------------------------------------
def _rdkit_from_3d(atoms: Atoms):
    """An RDKit molecule of ``atoms`` with bonds perceived from the geometry (neutral) and
    stereochemistry assigned from the 3D coordinates."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    from .compare import _rdkit_molecule

    molecule = _rdkit_molecule(atoms.numbers, atoms.positions)
    rdDetermineBonds.DetermineBonds(molecule, charge=0)
    Chem.AssignStereochemistryFrom3D(molecule)
    return molecule


def stereocentres(atoms: Atoms) -> list[tuple[int, str]]:
    """Stereocentres of a molecule from its 3D structure: ``(atom index, CIP label)``, the label
    ``R``/``S``, or ``?`` for a possible stereocentre without one. RDKit: bonds from the
    geometry (``rdDetermineBonds.DetermineBonds``, charge 0), ``AssignStereochemistryFrom3D``,
    ``FindMolChiralCenters(includeUnassigned=True)``. ValueError when RDKit cannot perceive the
    bonds (e.g. a structure that is no molecule)."""
    from rdkit import Chem

    try:
        molecule = _rdkit_from_3d(atoms)
    except Exception as error:  # RDKit raises several types for unbondable geometries
        raise ValueError(f"RDKit could not perceive the bonds of {atoms.get_chemical_formula()}: "
                         f"{error}") from error
    centres = Chem.FindMolChiralCenters(molecule, includeUnassigned=True,
                                        useLegacyImplementation=False)
    return [(int(i), str(label)) for i, label in centres]


def format_stereocentres(centres: Iterable[tuple[int, str]], symbols: list[str]) -> str:
    """``"C1 R; N3 ?"``: element and atom index (0-based, the subset's order) of each
    stereocentre with its CIP label; ``""`` for none."""
    return "; ".join(f"{symbols[i]}{i} {label}" for i, label in centres)


def chiral_molecules_table(molecules: Iterable[Atoms]):
    """One row per molecule (:data:`MOLECULE_COLUMNS`): its stereocentres with CIP labels
    (:func:`format_stereocentres`), how many, and ``chiral`` (at least one)."""
    import pandas as pd

    rows = []
    for atoms in molecules:
        centres = stereocentres(atoms)
        rows.append({
            "qm9_id": int(atoms.info["qm9_id"]),
            "n_atoms": len(atoms),
            "formula": atoms.get_chemical_formula(),
            "smiles": atoms.info.get("smiles", ""),
            "stereocentres": format_stereocentres(centres, atoms.get_chemical_symbols()),
            "n_stereocentres": len(centres),
            "chiral": bool(centres),
        })
    return pd.DataFrame(rows, columns=list(MOLECULE_COLUMNS))


def mirror_image(atoms: Atoms) -> Atoms:
    """``atoms`` reflected through the yz plane (x -> -x): the other enantiomer."""
    mirrored = atoms.copy()
    mirrored.positions = atoms.positions * [-1.0, 1.0, 1.0]
    return mirrored


# ----------------------------------------------------------------------------------------
# one decode
# ----------------------------------------------------------------------------------------
def hand_of(rmsd: float, mirror_rmsd: float, tolerance: float = 0.01) -> str:
    """Which enantiomer a decoded structure is, from its RMSD to the original (``rmsd``) and
    to the original's mirror image (``mirror_rmsd``), Angstrom: ``original`` or ``mirror``
    (within ``tolerance`` of that one only), ``either`` (of both: the two hands are not told
    apart at this tolerance) or ``neither`` (the structure was not recovered)."""
    near, near_mirror = bool(rmsd < tolerance), bool(mirror_rmsd < tolerance)
    return {(True, False): "original", (False, True): "mirror",
            (True, True): "either", (False, False): "neither"}[(near, near_mirror)]


def _descriptor(settings: Mapping[str, Any], fingerprint: str, mode: str):
    from .descriptor import Descriptor

    if fingerprint not in FINGERPRINTS:
        raise ValueError(f"unknown fingerprint {fingerprint!r}; choose one of {FINGERPRINTS}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if mode == "single" and not settings.get("species"):
        raise ValueError("mode 'single' needs descriptor settings with species")
    species = settings.get("species") if mode == "single" else None
    return Descriptor.from_dict({**settings, "species": species,
                                 "chiral": fingerprint == "chiral"})


def decode_chirality(
    molecule: Atoms,
    fingerprint: str,
    attempt: int,
    *,
    seed: int = 0,
    threshold: float = 1e-6,
    descriptor: Mapping[str, Any] = DECODING_DESCRIPTOR,
    mode: str = "positions",
    structure_tolerance: float = 0.01,
    max_iterations: int | None = None,
    hops: int | None = None,
) -> tuple[Atoms, dict[str, Any]]:
    """One attempt at decoding ``molecule`` from its ``fingerprint`` (``"chiral"``: with the
    parity-odd invariants; ``"default"``), compared with the original and its mirror image.

    descriptor: ``Descriptor.from_dict`` settings (the QM9 experiment's; species are used in
    ``mode="single"`` only). The seed is ``milad.qm9.decode_seed(seed, qm9_id, attempt)``, the
    same for both fingerprints, so the two decodes of one attempt start from the same atoms.

    Returns the decoded atoms and a record with the columns :data:`COLUMNS`: ``rmsd`` /
    ``mirror_rmsd`` the structure RMSD (Angstrom, ``milad.compare.compare``) of the decode to
    the centred original and to its mirror image, ``hand`` (:func:`hand_of` at
    ``structure_tolerance``), ``right_hand`` (hand is ``original``), ``odd_sign`` (+1 / -1:
    the parity-odd invariants of the decoded structure have the sign of the original's / the
    opposite one; 0 where they vanish), ``decoded_stereocentres`` (the CIP labels of the
    decoded structure, its atoms given the original's species and indices through the
    comparison's assignment; empty when RDKit cannot read it).
    """
    from .compare import compare
    from .decode import decode, search_effort
    from .qm9 import decode_seed, reference_molecule

    used = _descriptor(descriptor, fingerprint, mode)
    max_iterations, hops = search_effort(mode, max_iterations, hops)  # (mode checked just above)
    chiral = used if fingerprint == "chiral" else _descriptor(descriptor, "chiral", mode)
    qm9_id = int(molecule.info["qm9_id"])
    reference = reference_molecule(molecule, used)
    attempt_seed = decode_seed(seed, qm9_id, attempt)
    start = time.perf_counter()
    atoms, result = decode(used.molecule(molecule), used, len(molecule), seed=attempt_seed,
                           attempts=1, tol=float(threshold), max_iterations=max_iterations,
                           hops=hops, species_mode=mode)
    wall = time.perf_counter() - start
    comparison = compare(reference, atoms)
    hand = hand_of(comparison.rmsd, comparison.mirror_rmsd, structure_tolerance)
    odd = chiral.invariants.imaginary
    target_odd, decoded_odd = chiral.molecule(molecule)[odd], chiral.molecule(atoms)[odd]
    odd_sign = int(np.sign(np.dot(target_odd, decoded_odd)))
    assignment = (comparison.assignment if comparison.matched == "original"
                  else comparison.mirror_assignment)
    relabelled = Atoms(symbols=molecule.get_chemical_symbols(),
                       positions=atoms.positions[np.asarray(assignment)])
    try:
        decoded_centres = format_stereocentres(stereocentres(relabelled),
                                               molecule.get_chemical_symbols())
    except ValueError:
        decoded_centres = ""
    record = {
        "qm9_id": qm9_id,
        "n_atoms": len(molecule),
        "formula": molecule.get_chemical_formula(),
        "smiles": molecule.info.get("smiles", ""),
        "stereocentres": format_stereocentres(stereocentres(molecule),
                                              molecule.get_chemical_symbols()),
        "fingerprint": fingerprint,
        "mode": mode,
        "attempt": int(attempt),
        "seed": attempt_seed,
        "base_seed": int(seed),
        "success": bool(result.success),
        "fingerprint_rmsd": float(result.fingerprint_rmsd),
        "rmsd": float(comparison.rmsd),
        "mirror_rmsd": float(comparison.mirror_rmsd),
        "hand": hand,
        "right_hand": hand == "original",
        "odd_sign": odd_sign,
        "decoded_stereocentres": decoded_centres,
        "wall_s": float(wall),
        "threshold": float(threshold),
        "structure_tolerance": float(structure_tolerance),
        "descriptor": used.to_dict(),
        "options": {"max_iterations": int(max_iterations), "hops": int(hops), "attempts": 1},
        "timings": {k: float(v) for k, v in result.timings.items()},
        "species_aware_comparison": bool(comparison.species_aware),
        "assignment": [int(i) for i in assignment],
    }
    atoms.info.update(qm9_id=qm9_id, fingerprint=fingerprint, attempt=int(attempt),
                      seed=attempt_seed, fingerprint_rmsd=float(result.fingerprint_rmsd))
    return atoms, record


def run_chirality_decode(
    subset: str | Path,
    qm9_id: int,
    fingerprint: str,
    attempt: int,
    structure_path: str | Path,
    record_path: str | Path,
    *,
    provenance: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One pipeline job: :func:`decode_chirality` of molecule ``qm9_id`` of the subset file
    (``options``: its keyword arguments); writes the decoded atoms (extxyz) and the record
    (JSON, with ``provenance``). Returns the record."""
    from .data import read_qm9_subset
    from .qm9 import find_molecule, write_decode

    molecule = find_molecule(read_qm9_subset(subset), qm9_id=int(qm9_id))
    atoms, record = decode_chirality(molecule, fingerprint, int(attempt), **options)
    write_decode(atoms, record, structure_path, record_path, provenance)
    return record


# ----------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------
def chirality_table(records: Iterable[Mapping[str, Any]]):
    """One row per decode (:data:`COLUMNS`), sorted by atoms, QM9 ID, fingerprint (chiral
    first) and attempt."""
    import pandas as pd

    table = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in records], columns=list(COLUMNS))
    if table.empty:
        return table
    order = {name: i for i, name in enumerate(FINGERPRINTS)}
    table = table.sort_values(
        ["n_atoms", "qm9_id", "fingerprint", "attempt"],
        key=lambda column: column.map(order) if column.name == "fingerprint" else column)
    return table.reset_index(drop=True)


def chirality_summary(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per fingerprint: ``molecules``, ``decodes``, ``successes``, and among the successes
    how many returned each hand (``original``, ``mirror``, ``either``, ``neither``), the
    largest RMSD to the original, and ``criterion``: every success is the original hand
    (None without successes)."""
    summary = {}
    for fingerprint in FINGERPRINTS:
        rows = table[table["fingerprint"] == fingerprint]
        if rows.empty:
            continue
        ok = rows[rows["success"].astype(bool)]
        hands = {hand: int((ok["hand"] == hand).sum()) for hand in HANDS}
        summary[fingerprint] = {
            "molecules": int(rows["qm9_id"].nunique()),
            "decodes": len(rows),
            "successes": len(ok),
            **hands,
            "largest_rmsd_of_successes": float(ok["rmsd"].max()) if len(ok) else None,
            "criterion": bool(hands["original"] == len(ok)) if len(ok) else None,
        }
    return summary


def chirality_notes(molecules: pd.DataFrame, table: pd.DataFrame, threshold: float,
                    structure_tolerance: float, *, smoke_test: bool = False) -> list[str]:
    """The findings in sentences: the chiral molecules found, and per fingerprint how many
    successful decodes returned the original hand; whether the criterion holds."""
    chiral = molecules[molecules["chiral"].astype(bool)]
    notes = []
    if smoke_test:
        notes.append(f"Smoke test: {table['qm9_id'].nunique()} molecule(s), reduced decode "
                     "effort; it checks that the rules run, not the rates.")
    notes.append(
        f"{len(chiral)} of the {len(molecules)} molecules looked at have a stereocentre "
        "(RDKit, from the 3D structure): QM9 IDs "
        + (", ".join(str(i) for i in chiral["qm9_id"]) or "none") + ".")
    summary = chirality_summary(table)
    for fingerprint, stats in summary.items():
        what = "chiral fingerprint (parity-odd invariants appended)" if fingerprint == "chiral" \
            else "default fingerprint"
        line = (f"{what}: {stats['successes']} of {stats['decodes']} decodes succeeded "
                f"(fingerprint RMSD < {threshold:g})")
        if stats["successes"]:
            line += (f"; of these {stats['original']} returned the original enantiomer, "
                     f"{stats['mirror']} its mirror image (structure RMSD < "
                     f"{structure_tolerance:g} A to that one only)")
            if stats["either"] or stats["neither"]:
                line += (f", {stats['either']} both (hands not told apart at this "
                         f"tolerance), {stats['neither']} neither")
        notes.append(line + ".")
    stats = summary.get("chiral")
    if stats and stats["successes"]:
        verdict = "holds" if stats["criterion"] else "FAILS"
        notes.append(
            f"Criterion (every successful decode of the chiral fingerprint is the original, "
            f"structure RMSD < {structure_tolerance:g} A, not the mirror image): {verdict}; "
            f"largest RMSD to the original of a success {stats['largest_rmsd_of_successes']:.2g} A.")
    elif stats:
        notes.append("No decode of the chiral fingerprint succeeded: the criterion is untested.")
    return notes


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.3g}"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return str(value)


def chirality_markdown(molecules: pd.DataFrame, table: pd.DataFrame, notes: list[str],
                       provenance_lines: list[str], title: str) -> str:
    """The Markdown table: the chiral molecules with their stereocentres, then one row per
    molecule x attempt with the chiral and the default decode side by side."""
    chiral = molecules[molecules["chiral"].astype(bool)]
    lines = [f"# {title}", "", "## Chiral molecules", "",
             "| QM9 ID | atoms | formula | SMILES | stereocentres (CIP) |", "|---|---:|---|---|---|"]
    lines += [f"| {r.qm9_id} | {r.n_atoms} | {r.formula} | `{r.smiles}` | {r.stereocentres} |"
              for r in chiral.itertuples(index=False)]
    header = ["QM9 ID", "attempt"]
    fields = [("success", "decoded"), ("fingerprint_rmsd", "fingerprint RMSD"),
              ("rmsd", "RMSD to original (A)"), ("mirror_rmsd", "RMSD to mirror (A)"),
              ("hand", "hand"), ("decoded_stereocentres", "decoded CIP")]
    present = [f for f in FINGERPRINTS if (table["fingerprint"] == f).any()]
    for fingerprint in present:
        header += [f"{fingerprint}: {name}" for _, name in fields]
    lines += ["", "## Decodes", "", "| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]
    keyed = table.set_index(["qm9_id", "attempt", "fingerprint"])
    for (qm9_id, attempt), _ in table.groupby(["qm9_id", "attempt"], sort=False):
        cells = [str(qm9_id), str(attempt)]
        for fingerprint in present:
            key = (qm9_id, attempt, fingerprint)
            row = keyed.loc[key] if key in keyed.index else None
            cells += [_cell(row[c]) if row is not None else "" for c, _ in fields]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""] + [f"{i}. {line}" for i, line in enumerate(notes, 1)]
    lines += ["", "## Provenance", ""] + [f"- {line}" for line in provenance_lines]
    return "\n".join(lines) + "\n"
