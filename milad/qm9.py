"""The QM9 decoding experiment of the paper (section IV A, Figs. 5-7; supplementary
"Reconstruction experiment" and the RDKit validation), one function per pipeline step.

The molecules are the paper's 77-molecule QM9 subset (``milad.data.read_qm9_subset``), each
centred on its smallest enclosing sphere, cutoff 5 A, Zernike invariants to n_max = 7 with
delta features. Fingerprints without species give every atom weight 1; with species the
atoms of H, C, O, N, F weigh 1.1, 1.3, 1.5, 1.7, 1.9 as in the paper (``SPECIES``, one bin of
[1, 2] each).

A decode is one attempt of one molecule in one of three modes (``MODES``):

* ``positions``: positions from the fingerprint without species;
* ``single``: positions and species from the one fingerprint with species;
* ``two``: species from the fingerprint with species, given the positions decoded (mode
  ``positions``, same molecule and attempt) from the fingerprint without species.

Each attempt has its own seed, :func:`decode_seed` of the configured seed, the QM9 ID and the
attempt number. :func:`run_decode` decodes, compares the result with the original molecule
(``milad.compare.compare``) and writes the structure and a JSON record; :func:`decodes_table`
gathers the records into the tidy table ``results/qm9/decodes.csv`` (``COLUMNS``);
from it :func:`per_molecule` (best and worst attempt per molecule), :func:`decoding_summary`
(the headline numbers beside the paper's, ``milad.paper.DECODING``) and
:func:`point_group_counts` (paper Fig. 7); :func:`summary_notes` puts them into words.
A molecule counts as decoded when its best attempt reaches a fingerprint RMSD below the
threshold (the paper: 1e-6), and as consistently decoded when every attempt does.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
from ase import Atoms

from .data import (
    QM9_SPECIES,
    QM9_SUBSET_PATH,
    extract_qm9_subset,
    extract_qm9_subset_from_archive,
    qm9_subset_differences,
    qm9pack_csv_paths,
    read_qm9_subset,
    sha256_of,
)
from .io import atomic_output, atomic_write_text
from .paper import DECODING, DECODING_DESCRIPTOR, DECODING_EXPERIMENT, RDKIT_VALIDATION

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "MODES",
    "QM9SubsetMismatch",
    "RDKIT_THRESHOLD",
    "SOURCES",
    "SPECIES",
    "build_subset",
    "check_table",
    "check_threshold",
    "copies_recognised_up_to",
    "decode_molecule",
    "decode_seed",
    "decodes_table",
    "decoding_summary",
    "descriptors",
    "find_molecule",
    "per_molecule",
    "point_group_counts",
    "point_group_table",
    "read_records",
    "reference_molecule",
    "run_decode",
    "select_molecules",
    "summary_notes",
    "validation_notes",
    "write_decode",
]

SOURCES = ("shipped", "qm9pack", "figshare")
#: Species order of the weights 1.1, 1.3, 1.5, 1.7, 1.9 (bins of [1, 2]).
SPECIES = QM9_SPECIES
#: decoding modes: positions only; positions and species from one fingerprint; species from a
#: second (species) fingerprint given the decoded positions
MODES = ("positions", "single", "two")
#: columns of the tidy decode table (one row per molecule x mode x attempt), which the
#: figures read (``milad.plots``)
COLUMNS = (
    "qm9_id", "n_atoms", "formula", "smiles", "point_group", "mode", "attempt", "seed",
    "success", "fingerprint_rmsd", "positions_rmsd", "structure_rmsd", "rmsd", "mirror_rmsd",
    "matched", "species_correct", "iterations", "wall_s",
)
#: structure RMSD (Angstrom) below which RDKit calls two structures the same (SI Figs. 1, 2)
RDKIT_THRESHOLD = 0.1


class QM9SubsetMismatch(ValueError):
    """The QM9 subset regenerated from a source differs from the shipped one."""


# ----------------------------------------------------------------------------------------
# the molecules
# ----------------------------------------------------------------------------------------
def build_subset(
    source: str,
    destination: str | Path,
    *,
    archive: str | Path | None = None,
    shipped: str | Path = QM9_SUBSET_PATH,
    atol: float = 1e-6,
) -> dict[str, Any]:
    """Write the paper's 77 QM9 molecules to ``destination`` (extxyz) from ``source``.

    source: ``"shipped"`` copies ``shipped`` (milad/data/qm9_subset.extxyz); ``"qm9pack"``
    extracts them from the installed qm9pack package's CSV tables (``ModuleNotFoundError``
    saying ``pip install qm9pack`` without it); ``"figshare"`` from the QM9 archive
    ``archive`` (``dsgdb9nsd.xyz.tar.bz2``, see ``milad.data.fetch_qm9_archive``).

    A regenerated subset is compared with ``shipped`` (IDs, order, symbols, positions to
    ``atol`` A, SMILES) and ``QM9SubsetMismatch`` lists every difference; nothing is
    written then. Returns a manifest: source, molecule count, sha256 of what was written and
    of the shipped file, and the comparison.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown QM9 source {source!r}; choose one of {SOURCES}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    reference = read_qm9_subset(shipped)
    manifest: dict[str, Any] = {"source": source, "shipped": str(shipped),
                                "shipped_sha256": sha256_of(shipped)}
    if source == "shipped":
        shutil.copyfile(shipped, destination)
        molecules = read_qm9_subset(destination)
        manifest["compared_with_shipped"] = "is the shipped file"
    else:
        if source == "qm9pack":
            paths = qm9pack_csv_paths()
            molecules = extract_qm9_subset(paths)
            manifest["tables"] = [str(p) for p in paths]
        else:
            if archive is None:
                raise ValueError("the QM9 source 'figshare' needs the archive dsgdb9nsd.xyz.tar.bz2")
            molecules = extract_qm9_subset_from_archive(archive)
            manifest["archive"] = str(archive)
            manifest["archive_sha256"] = sha256_of(archive) if Path(archive).is_file() else None
        differences = qm9_subset_differences(molecules, reference, atol=atol)
        if differences:
            raise QM9SubsetMismatch(
                f"the QM9 subset regenerated from {source} differs from the shipped {shipped} "
                f"in {len(differences)} place(s):\n  " + "\n  ".join(differences)
            )
        note = (f"QM9 (Ramakrishnan et al. 2014) via {source}; ID = gdb index - 1; subset of "
                "Uhrin 2021 SI; checked equal to the shipped subset")
        for atoms in molecules:
            atoms.info["provenance"] = note
        from ase.io import write

        with atomic_output(destination, "w") as handle:
            write(handle, molecules, format="extxyz")
        manifest["compared_with_shipped"] = f"identical to {atol:g} A (IDs, order, symbols, SMILES)"
    manifest.update(
        n_molecules=len(molecules),
        n_atoms={str(int(a.info["qm9_id"])): len(a) for a in molecules},
        sha256=sha256_of(destination),
    )
    return manifest


def select_molecules(molecules: Iterable[Atoms], ids: Iterable[int] | None = None) -> list[Atoms]:
    """The molecules with these QM9 IDs (in the order given), or all of them for ``None``.

    Raises ``KeyError`` naming the IDs the subset does not hold.
    """
    molecules = list(molecules)
    if ids is None:
        return molecules
    by_id = {int(a.info["qm9_id"]): a for a in molecules}
    ids = [int(i) for i in ids]
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise KeyError(f"QM9 IDs {missing} are not in the subset (IDs {sorted(by_id)})")
    return [by_id[i] for i in ids]


def find_molecule(molecules: Iterable[Atoms], *, qm9_id: int | None = None,
                  smiles: str | None = None) -> Atoms:
    """The one molecule with this QM9 ID or SMILES (e.g. urea, ``"NC(N)=O"``)."""
    if (qm9_id is None) == (smiles is None):
        raise ValueError("give exactly one of qm9_id and smiles")
    molecules = list(molecules)
    if qm9_id is not None:
        hits = [a for a in molecules if int(a.info["qm9_id"]) == int(qm9_id)]
    else:
        hits = [a for a in molecules
                if smiles in (a.info.get("smiles"), a.info.get("smiles_relaxed"))]
    if len(hits) != 1:
        what = f"QM9 ID {qm9_id}" if qm9_id is not None else f"SMILES {smiles!r}"
        raise KeyError(f"{len(hits)} molecules of the subset have {what} (need exactly one)")
    return hits[0]


def descriptors(settings: Mapping[str, Any] = DECODING_DESCRIPTOR):
    """The experiment's two descriptors, (without species, with species), from
    ``Descriptor.from_dict`` settings with a species map (the paper's by default)."""
    from .descriptor import Descriptor

    if not settings.get("species"):
        raise ValueError("the QM9 descriptor settings need species (the map of the species modes)")
    return Descriptor.from_dict({**settings, "species": None}), Descriptor.from_dict(settings)


def reference_molecule(molecule: Atoms, descriptor) -> Atoms:
    """The molecule as the fingerprint sees it: positions centred on its miniball."""
    reference = molecule.copy()
    reference.positions = descriptor.molecule_positions(molecule)
    return reference


def decode_seed(seed: int, qm9_id: int, attempt: int) -> int:
    """Seed of one attempt: a 32-bit integer drawn from ``SeedSequence([seed, qm9_id,
    attempt])``, so attempts, molecules and base seeds get unrelated random starts."""
    for name, value in (("seed", seed), ("qm9_id", qm9_id), ("attempt", attempt)):
        if int(value) < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    sequence = np.random.SeedSequence([int(seed), int(qm9_id), int(attempt)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def point_group_table(molecules: Iterable[Atoms], tolerance: float = 0.01):
    """qm9_id, n_atoms, formula, smiles and point group (``milad.compare.point_group``) of
    every molecule, as a DataFrame."""
    import pandas as pd

    from .compare import point_group

    rows = []
    for atoms in molecules:
        rows.append({
            "qm9_id": int(atoms.info["qm9_id"]),
            "n_atoms": len(atoms),
            "formula": atoms.get_chemical_formula(),
            "smiles": atoms.info.get("smiles", ""),
            "point_group": point_group(atoms, tolerance=tolerance),
        })
    return pd.DataFrame(rows, columns=["qm9_id", "n_atoms", "formula", "smiles", "point_group"])


# ----------------------------------------------------------------------------------------
# one decode
# ----------------------------------------------------------------------------------------
def decode_molecule(
    molecule: Atoms,
    mode: str,
    attempt: int,
    *,
    seed: int = 0,
    threshold: float = 1e-6,
    positions: np.ndarray | None = None,
    descriptor: Mapping[str, Any] = DECODING_DESCRIPTOR,
    max_iterations: int | None = None,
    hops: int | None = None,
) -> tuple[Atoms, dict[str, Any]]:
    """One attempt at decoding ``molecule``'s fingerprint in ``mode``; compare with it.

    positions: mode ``"two"`` only, the (n_atoms, 3) positions decoded in mode
    ``"positions"`` (same molecule and attempt). descriptor: ``Descriptor.from_dict`` settings
    with species (the paper's by default); the positions-only descriptor drops the species.
    The decode is
    ``milad.decode.decode(fingerprint, descriptor, n_atoms, seed=decode_seed(seed, qm9_id,
    attempt), attempts=1, tol=threshold, max_iterations=..., hops=...)``; ``None`` takes the
    mode's default effort (``milad.decode.SEARCH_EFFORT``).

    Returns the decoded atoms (symbols ``X`` in mode ``"positions"``) and a record holding
    the columns of ``COLUMNS`` except ``point_group`` (``success``: the decode's, i.e. the
    fingerprint RMSD, and in mode ``"two"`` also the positions fingerprint RMSD, below
    ``threshold``; ``species_correct``: the decoded
    composition equals the original's; ``None`` in mode ``"positions"``), plus the decode's
    timings, the atoms' symbols and the comparison's atom assignment.
    """
    from .compare import compare
    from .decode import decode, search_effort

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    max_iterations, hops = search_effort(mode, max_iterations, hops)
    if (positions is not None) != (mode == "two"):
        raise ValueError("decoded positions are needed in mode 'two', and only there")
    qm9_id = int(molecule.info["qm9_id"])
    plain, with_species = descriptors(descriptor)
    reference = reference_molecule(molecule, plain)
    n_atoms = len(molecule)
    attempt_seed = decode_seed(seed, qm9_id, attempt)
    options = dict(seed=attempt_seed, attempts=1, tol=float(threshold),
                   max_iterations=int(max_iterations), hops=int(hops))
    start = time.perf_counter()
    if mode == "positions":
        atoms, result = decode(plain.molecule(molecule), plain, n_atoms, species_mode="positions",
                               **options)
    elif mode == "single":
        atoms, result = decode(with_species.molecule(molecule), with_species, n_atoms,
                               species_mode="single", **options)
    else:
        atoms, result = decode(
            with_species.molecule(molecule), with_species, n_atoms, species_mode="two",
            positions_fingerprint=plain.molecule(molecule), positions=positions, **options,
        )
    wall = time.perf_counter() - start
    start = time.perf_counter()
    comparison = compare(reference, atoms)
    compare_s = time.perf_counter() - start
    decoded_symbols = atoms.get_chemical_symbols()
    species_correct = (None if mode == "positions"
                       else Counter(decoded_symbols) == Counter(molecule.get_chemical_symbols()))
    record = {
        "qm9_id": qm9_id,
        "n_atoms": n_atoms,
        "formula": molecule.get_chemical_formula(),
        "smiles": molecule.info.get("smiles", ""),
        "mode": mode,
        "attempt": int(attempt),
        "seed": attempt_seed,
        "base_seed": int(seed),
        "success": bool(result.success),
        "fingerprint_rmsd": float(result.fingerprint_rmsd),
        "positions_rmsd": None if result.positions_rmsd is None else float(result.positions_rmsd),
        "structure_rmsd": float(comparison.best),
        "rmsd": float(comparison.rmsd),
        "mirror_rmsd": float(comparison.mirror_rmsd),
        "matched": comparison.matched,
        "species_correct": species_correct,
        "species_aware_comparison": bool(comparison.species_aware),
        "iterations": int(result.iterations),
        "wall_s": float(wall),
        "compare_s": float(compare_s),
        "threshold": float(threshold),
        "descriptor": with_species.to_dict(),
        "options": {"max_iterations": int(max_iterations), "hops": int(hops), "attempts": 1},
        "timings": {k: float(v) for k, v in result.timings.items()},
        "moment_rmsd": float(result.moment_rmsd),
        "decoded_symbols": decoded_symbols,
        "assignment": comparison.assignment if comparison.matched == "original"
        else comparison.mirror_assignment,
    }
    atoms.info.update(qm9_id=qm9_id, mode=mode, attempt=int(attempt), seed=attempt_seed,
                      fingerprint_rmsd=float(result.fingerprint_rmsd))
    return atoms, record


def run_decode(
    subset: str | Path,
    qm9_id: int,
    mode: str,
    attempt: int,
    structure_path: str | Path,
    record_path: str | Path,
    *,
    positions_path: str | Path | None = None,
    provenance: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One pipeline decode job: molecule ``qm9_id`` of the subset file ``subset``, decoded by
    :func:`decode_molecule` (``options``: its keyword arguments); writes the decoded atoms to
    ``structure_path`` (extxyz) and the record (with ``provenance``) to ``record_path``
    (JSON). positions_path: mode ``"two"``, the structure written by the job of mode
    ``"positions"`` for the same molecule and attempt. Returns the record."""
    from ase.io import read

    molecule = find_molecule(read_qm9_subset(subset), qm9_id=int(qm9_id))
    positions = None
    if positions_path is not None:
        decoded = read(positions_path, format="extxyz")
        if int(decoded.info.get("qm9_id", -1)) != int(qm9_id) or len(decoded) != len(molecule):
            raise ValueError(f"{positions_path} is not a decode of QM9 ID {qm9_id}")
        positions = decoded.positions
    atoms, record = decode_molecule(molecule, mode, int(attempt), positions=positions, **options)
    if positions_path is not None:
        record["positions_from"] = str(positions_path)
    write_decode(atoms, record, structure_path, record_path, provenance)
    return record


def write_decode(atoms: Atoms, record: Mapping[str, Any], structure_path: str | Path,
                 record_path: str | Path, provenance: Mapping[str, Any] | None = None) -> None:
    """Write one decode job's outputs: the decoded atoms (extxyz) and its JSON record (with
    ``provenance``), each atomically, creating the folders."""
    from ase.io import write

    from .provenance import with_provenance

    structure_path, record_path = Path(structure_path), Path(record_path)
    structure_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(structure_path, "w") as handle:
        write(handle, atoms, format="extxyz")
    data = with_provenance(record, provenance) if provenance is not None else record
    atomic_write_text(record_path, json.dumps(data, indent=1, allow_nan=True) + "\n")


def read_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The JSON records written by :func:`run_decode`."""
    return [json.loads(Path(p).read_text()) for p in paths]


# ----------------------------------------------------------------------------------------
# the table and the rates
# ----------------------------------------------------------------------------------------
def decodes_table(records: Iterable[Mapping[str, Any]], point_groups=None):
    """The tidy table: one row per molecule x mode x attempt with the columns ``COLUMNS``,
    sorted by atoms, QM9 ID, mode and attempt. point_groups: a DataFrame with ``qm9_id`` and
    ``point_group`` columns (e.g. :func:`point_group_table`), or a ``{qm9_id: group}``
    mapping; molecules without one get an empty point group."""
    import pandas as pd

    if point_groups is None:
        groups = {}
    elif hasattr(point_groups, "columns"):
        groups = dict(zip(point_groups["qm9_id"].astype(int), point_groups["point_group"]))
    else:
        groups = {int(k): v for k, v in dict(point_groups).items()}
    rows = []
    for record in records:
        row = {column: record.get(column) for column in COLUMNS}
        row["point_group"] = groups.get(int(record["qm9_id"]), "")
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if table.empty:
        return table
    for column in ("fingerprint_rmsd", "positions_rmsd", "structure_rmsd", "rmsd", "mirror_rmsd",
                   "wall_s"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    table["species_correct"] = table["species_correct"].astype("boolean")
    table["success"] = table["success"].astype(bool)
    order = {mode: i for i, mode in enumerate(MODES)}
    table = table.sort_values(
        ["n_atoms", "qm9_id", "mode", "attempt"],
        key=lambda column: column.map(order) if column.name == "mode" else column,
    )
    return table.reset_index(drop=True)


def check_table(table: pd.DataFrame, required: Iterable[str], what: str) -> None:
    """Raise ValueError (its message starting with ``what``) naming missing columns, values
    of a ``mode`` column outside :data:`MODES`, or an empty table."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{what} needs a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {', '.join(missing)}")
    if table.empty:
        raise ValueError(f"{what}: the table is empty")
    if "mode" in table.columns:
        unknown = sorted(set(map(str, table["mode"])) - set(MODES))
        if unknown:
            raise ValueError(
                f"{what}: unknown mode(s) {', '.join(unknown)}; expected {', '.join(MODES)}"
            )


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """``threshold`` as a float; ValueError unless it is a positive finite number."""
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"{name} must be a positive number, got {threshold}")
    return float(threshold)


def per_molecule(table: pd.DataFrame, threshold: float = 1e-6) -> pd.DataFrame:
    """One row per (mode, molecule) of the decode table.

    Columns: ``mode``, ``qm9_id``, ``n_atoms``, ``point_group`` (when the table has it),
    ``attempts``, ``best`` / ``worst`` (lowest / highest finite fingerprint RMSD over the
    attempts, NaN when none is finite), ``successes`` (attempts with fingerprint RMSD <
    ``threshold``), ``decoded`` (best < threshold) and ``consistent`` (every attempt below
    it). Sorted by mode (``MODES`` order), ``n_atoms``, ``qm9_id``.
    """
    threshold = check_threshold(threshold)
    check_table(table, ("qm9_id", "n_atoms", "mode", "fingerprint_rmsd"), "per_molecule")
    rmsd = table["fingerprint_rmsd"].astype(float)
    data = table.assign(_ok=rmsd.to_numpy() < threshold, _rmsd=rmsd.where(np.isfinite(rmsd)))
    aggregations = {
        "n_atoms": ("n_atoms", "first"),
        "attempts": ("_rmsd", "size"),
        "best": ("_rmsd", "min"),
        "worst": ("_rmsd", "max"),
        "successes": ("_ok", "sum"),
    }
    if "point_group" in table.columns:
        aggregations["point_group"] = ("point_group", "first")
    out = data.groupby(["mode", "qm9_id"], sort=False).agg(**aggregations).reset_index()
    out["successes"] = out["successes"].astype(int)
    out["decoded"] = out["best"].to_numpy() < threshold
    out["consistent"] = out["successes"] == out["attempts"]
    out["_mode"] = out["mode"].map({m: i for i, m in enumerate(MODES)})
    out = out.sort_values(["_mode", "n_atoms", "qm9_id"]).drop(columns="_mode")
    return out.reset_index(drop=True)


def decoding_summary(table: pd.DataFrame, threshold: float = 1e-6) -> pd.DataFrame:
    """Headline decoding numbers, one row per mode present, beside the paper's.

    Columns: ``mode``, ``molecules``, ``decoded`` (best attempt below ``threshold``),
    ``consistently_decoded`` (all attempts below it), ``success_rate_percent`` and
    ``consistent_rate_percent`` (of ``molecules``), ``largest_decoded`` and
    ``largest_consistently_decoded`` (atoms; 0 when none), ``median_wall_s`` (seconds per
    attempt), ``paper_success_rate_percent``, ``paper_largest_decoded``,
    ``paper_largest_consistently_decoded`` (:data:`DECODING`, NaN where the paper gives
    none) and ``meets_paper``: our success rate, rounded to a whole percent as the paper's
    is, and our largest sizes are at least the paper's.
    """
    import pandas as pd

    check_table(table, ("qm9_id", "n_atoms", "mode", "fingerprint_rmsd", "wall_s"),
                   "decoding_summary")
    molecules = per_molecule(table, threshold)
    rows = []
    for mode in MODES:
        rows_of_mode = molecules[molecules["mode"] == mode]
        if rows_of_mode.empty:
            continue
        n = len(rows_of_mode)
        decoded = rows_of_mode[rows_of_mode["decoded"]]
        consistent = rows_of_mode[rows_of_mode["consistent"]]
        paper = DECODING[mode]
        rate = 100.0 * len(decoded) / n
        largest = int(decoded["n_atoms"].max()) if len(decoded) else 0
        largest_consistent = int(consistent["n_atoms"].max()) if len(consistent) else 0
        meets = round(rate) >= paper["success_rate_percent"]
        for ours, key in ((largest, "largest_decoded"),
                          (largest_consistent, "largest_consistently_decoded")):
            if paper[key] is not None:
                meets = meets and ours >= paper[key]
        rows.append({
            "mode": mode,
            "molecules": n,
            "decoded": len(decoded),
            "consistently_decoded": len(consistent),
            "success_rate_percent": rate,
            "consistent_rate_percent": 100.0 * len(consistent) / n,
            "largest_decoded": largest,
            "largest_consistently_decoded": largest_consistent,
            "median_wall_s": float(table.loc[table["mode"] == mode, "wall_s"].median()),
            "paper_success_rate_percent": float(paper["success_rate_percent"]),
            "paper_largest_decoded": np.nan if paper["largest_decoded"] is None
            else float(paper["largest_decoded"]),
            "paper_largest_consistently_decoded": np.nan
            if paper["largest_consistently_decoded"] is None
            else float(paper["largest_consistently_decoded"]),
            "meets_paper": bool(meets),
        })
    return pd.DataFrame(rows)


def point_group_counts(table: pd.DataFrame, threshold: float = 1e-6) -> pd.DataFrame:
    """Molecules decoded (best attempt below ``threshold``) per point group and mode.

    Columns: ``point_group``, ``mode``, ``molecules``, ``decoded``, ``proportion``; point
    groups ordered by number of molecules (most first), then name; modes in
    ``MODES`` order.
    """
    check_table(table, ("qm9_id", "n_atoms", "mode", "fingerprint_rmsd", "point_group"),
                   "point_group_counts")
    molecules = per_molecule(table, threshold)
    counts = (molecules.groupby(["point_group", "mode"], sort=False)
              .agg(molecules=("decoded", "size"), decoded=("decoded", "sum")).reset_index())
    counts["decoded"] = counts["decoded"].astype(int)
    counts["proportion"] = counts["decoded"] / counts["molecules"]
    size = counts.groupby("point_group")["molecules"].max()
    counts["_size"] = -counts["point_group"].map(size)
    counts["_mode"] = counts["mode"].map({m: i for i, m in enumerate(MODES)})
    counts = counts.sort_values(["_size", "point_group", "_mode"]).drop(columns=["_size", "_mode"])
    return counts.reset_index(drop=True)


def summary_notes(table, threshold: float = 1e-6, smoke_test: bool = False) -> list[str]:
    """Sentences setting the decode table's headline numbers (:func:`decoding_summary`)
    against the paper's: what counts as decoded, the molecules not decoded, and, for the
    paper's full experiment (``milad.paper.DECODING_EXPERIMENT``: all its molecules and
    attempts), every place where this run falls short of the paper and by how much. A smaller
    run is said not to be comparable with the paper (``smoke_test``: named a smoke test)."""
    experiment = DECODING_EXPERIMENT
    summary = decoding_summary(table, threshold)
    molecules = per_molecule(table, threshold)
    paper_threshold = f"{experiment['threshold']:.0e}".replace("e-0", "e-")  # as in the paper
    notes = [
        f"A molecule counts as decoded when its best attempt reaches a fingerprint RMSD below "
        f"{threshold:g} and as consistently decoded when every attempt does (the paper: "
        f"{paper_threshold}; {experiment['molecules']} molecules of "
        f"{experiment['smallest_atoms']} to {experiment['largest_atoms']} atoms, "
        f"{experiment['attempts']} attempts each). 'largest' sizes are those of the largest "
        "such molecule."
    ]
    short = []
    for row in summary.itertuples(index=False):
        gaps = []
        if round(row.success_rate_percent) < row.paper_success_rate_percent:
            gaps.append(f"success rate {row.success_rate_percent:.0f}% vs the paper's "
                        f"{row.paper_success_rate_percent:.0f}%")
        for ours, paper, label in (
            (row.largest_decoded, row.paper_largest_decoded, "largest decoded"),
            (row.largest_consistently_decoded, row.paper_largest_consistently_decoded,
             "largest consistently decoded"),
        ):
            if not math.isnan(paper) and ours < paper:
                gaps.append(f"{label} {ours} atoms vs the paper's {paper:.0f}")
        if gaps:
            short.append(f"{row.mode}: " + ", ".join(gaps))
        failed = molecules[(molecules["mode"] == row.mode) & ~molecules["decoded"]]
        if len(failed):
            listed = ", ".join(f"{int(q)} ({int(n)} atoms)"
                               for q, n in zip(failed["qm9_id"], failed["n_atoms"]))
            notes.append(f"{row.mode}: not decoded in any attempt: QM9 IDs {listed}.")
    n_molecules = int(table["qm9_id"].nunique())
    attempts = int(table.groupby(["mode", "qm9_id"])["attempt"].nunique().max())
    if smoke_test or n_molecules < experiment["molecules"] or attempts < experiment["attempts"]:
        notes.append(
            f"{'Smoke test' if smoke_test else 'Partial run'}: {n_molecules} molecule(s), not "
            f"comparable with the paper. This run decoded {n_molecules} molecule(s) of up to "
            f"{int(table['n_atoms'].max())} atoms with {attempts} attempt(s) each, not the "
            f"paper's {experiment['molecules']} molecules with {experiment['attempts']} "
            "attempts: its rates and largest sizes are not set against the paper's."
        )
    elif short:
        notes.append("FALLS SHORT OF THE PAPER: " + "; ".join(short) + ".")
    else:
        notes.append("No shortfall: every rate and size is at least the paper's.")
    return notes


def copies_recognised_up_to(copies: pd.DataFrame,
                            rdkit_threshold: float = RDKIT_THRESHOLD) -> int:
    """Largest size up to which every rotated, relabelled copy of the RDKit validation table
    (rows of kind ``"self"``) has an RDKit RMSD below ``rdkit_threshold``; 0 when none."""
    failed = copies.loc[~(copies["rmsd"] < rdkit_threshold), "n_atoms"]
    sizes = np.sort(copies["n_atoms"].unique())
    recognised = sizes[sizes < failed.min()] if len(failed) else sizes
    return int(recognised.max()) if len(recognised) else 0


def validation_notes(validation, rdkit_threshold: float | None = None) -> list[str]:
    """Sentences on the RDKit validation table(s) (``milad.compare.rdkit_validation``, both
    species settings concatenated) beside the paper's SI Fig. 1 numbers
    (``milad.paper.RDKIT_VALIDATION``): the largest size up to which every rotated,
    relabelled copy is recognised (:func:`copies_recognised_up_to`, default threshold
    :data:`RDKIT_THRESHOLD`) and the smallest RMSD of two different molecules; "FALLS SHORT"
    where the recognised size is below the paper's."""
    threshold = RDKIT_THRESHOLD if rdkit_threshold is None else float(rdkit_threshold)
    notes = []
    for species in sorted(set(bool(s) for s in validation["species"])):
        rows = validation[validation["species"].astype(bool) == species]
        label = "with species" if species else "positions only"
        copies, pairs = rows[rows["kind"] == "self"], rows[rows["kind"] == "pair"]
        paper = RDKIT_VALIDATION["copies_recognised_up_to"][species]
        line = f"RDKit validation, {label}:"
        if len(copies):
            up_to = copies_recognised_up_to(copies, threshold)
            largest = int(copies["n_atoms"].max())
            line += (f" every rotated, relabelled copy recognised (RDKit RMSD < {threshold:g} A) "
                     f"up to {up_to} atoms (paper {paper}; largest molecule here "
                     f"{largest} atoms)")
            if up_to < paper and largest >= paper:
                line += " - FALLS SHORT OF THE PAPER"
        if len(pairs):
            line += f"; smallest RMSD between different molecules {pairs['rmsd'].min():.3f} A"
            if not species:
                line += f" (paper {RDKIT_VALIDATION['min_pair_rmsd_A']} A)"
        notes.append(line + ".")
    return notes
