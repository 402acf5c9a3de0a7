"""Data sets: readers for the formats the pipeline pulls in.

mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): a JSON list of records whose
``structure`` is a pymatgen Structure dictionary (``lattice.matrix``, ``sites[i].xyz`` in
Angstrom, ``sites[i].species[0].element``) and ``outputs`` holds the DFT ``energy`` (eV, total)
and ``forces`` (eV/Angstrom). Read without pymatgen.

QM9 (Ramakrishnan et al., Sci. Data 1, 140022 (2014)): the paper's 77-molecule reconstruction
subset (supplementary "Reconstruction experiment"; QM9 ID k is gdb entry k + 1) ships with the
package as ``milad/data/qm9_subset.extxyz``; ``extract_qm9_subset`` regenerates it from the
``qm9pack`` CSV tables (columns ``Index`` = gdb index, ``Elements``, ``XYZ_Ang``, ``SMILES``) and
``extract_qm9_subset_from_archive`` from the canonical figshare archive ``dsgdb9nsd.xyz.tar.bz2``
(one ``dsgdb9nsd_<gdb index>.xyz`` file per molecule, read by :func:`read_qm9_xyz`), which
:func:`fetch_qm9_archive` takes from a local copy or downloads.

The mlearn files are fetched by :func:`fetch_mlearn`: from the xz-compressed copies shipped in
``milad/data/mlearn/`` (Li, Mo, Si, Ge training and test; Ni, Cu test), else from a local mirror
directory when one is configured, else from the canonical GitHub repository at the pinned
commit ``MLEARN_COMMIT``, and always checked against the pinned sha256 digests in
``MLEARN_SHA256``.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import lzma
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .io import atomic_output, atomic_path
from .paper import DECODING_DESCRIPTOR

__all__ = [
    "MLEARN_COMMIT",
    "MLEARN_ELEMENTS",
    "MLEARN_EMBEDDED_DIR",
    "MLEARN_REPOSITORY",
    "MLEARN_SHA256",
    "MLEARN_SPLITS",
    "QM9_ARCHIVE_NAME",
    "QM9_ARCHIVE_URL",
    "QM9_SUBSET_IDS",
    "QM9_SUBSET_PATH",
    "QM9_SUBSET_SHA256",
    "ChecksumError",
    "DataUnavailableError",
    "FetchedFile",
    "extract_qm9_subset",
    "extract_qm9_subset_from_archive",
    "fetch_mlearn",
    "fetch_mlearn_all",
    "fetch_qm9_archive",
    "mlearn_embedded_path",
    "mlearn_url",
    "missing_data_summary",
    "parse_qm9_xyz",
    "qm9pack_csv_paths",
    "qm9_subset_differences",
    "read_mlearn",
    "read_qm9_subset",
    "read_qm9_xyz",
    "sha256_of",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
QM9_SUBSET_PATH = DATA_DIR / "qm9_subset.extxyz"
#: sha256 of the shipped subset file; ``read_qm9_subset`` checks it when reading that file.
QM9_SUBSET_SHA256 = "bf982c1b2c646b6900a9fc25c72bae316a7e2d7bc2cb43a3541eb404fedbceef"
#: The paper's species weights for QM9 (section IV A): H, C, O, N, F -> 1.1, 1.3, 1.5, 1.7, 1.9
#: (one bin of [1, 2] each), as a ``Descriptor(species=...)`` string.
QM9_SPECIES: str = DECODING_DESCRIPTOR["species"]

# Supplementary material, "Reconstruction experiment": three molecules per size from 3 to 29
# atoms (two of size 3, none of size 28), as 0-based QM9 IDs keyed by number of atoms.
QM9_SUBSET_IDS: dict[int, tuple[int, ...]] = {
    3: (2, 4), 4: (1, 3, 5), 5: (0, 23, 26), 6: (7, 9, 11), 7: (8, 10, 16), 8: (6, 19, 31),
    9: (13, 14, 15), 10: (17, 28, 29), 11: (12, 44, 64), 12: (21, 39, 40), 13: (62, 67, 71),
    14: (20, 38, 101), 15: (54, 80, 83), 16: (218, 223, 226), 17: (53, 82, 132),
    18: (225, 228, 229), 19: (1081, 1083, 1087), 20: (227, 273, 290), 21: (1091, 1094, 1095),
    22: (5796, 5809, 5812), 23: (1093, 1103, 1129), 24: (5806, 5807, 5808),
    25: (36927, 36945, 36959), 26: (5805, 5810, 5850), 27: (42138, 57349, 57419),
    29: (57517, 58098, 58182),
}


def sha256_of(path: str | Path) -> str:
    """Hex sha256 digest of a file."""
    return _file_digest(path, hashlib.sha256())


def _file_digest(path: str | Path, digest) -> str:
    """Hex digest of a file by the ``hashlib`` object ``digest``, read in 1 MiB blocks."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_to_atoms(record: dict, where: str) -> Atoms:
    try:
        structure = record["structure"]
        cell = np.array(structure["lattice"]["matrix"], dtype=float)
        sites = structure["sites"]
        symbols = [site["species"][0]["element"] for site in sites]
        positions = np.array([site["xyz"] for site in sites], dtype=float)
        outputs = record["outputs"]
        energy = float(outputs["energy"])
        forces = np.array(outputs["forces"], dtype=float)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: not an mlearn record ({type(error).__name__}: {error})") from error
    if forces.shape != positions.shape:
        raise ValueError(f"{where}: {len(forces)} force rows for {len(positions)} sites")
    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    atoms.info.update(
        {key: record[key] for key in ("group", "description", "tag") if key in record}
    )
    return atoms


def read_mlearn(path: str | Path) -> list[Atoms]:
    """Structures of one mlearn JSON file (``.json``, or ``.json.xz`` as shipped) as periodic
    ``ase.Atoms`` with energy and forces."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mlearn data file not found: {path}")
    try:
        raw = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
        records = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, lzma.LZMAError, EOFError) as error:
        raise ValueError(f"mlearn data file {path} is corrupt or truncated: {error}") from error
    if not isinstance(records, list):
        raise ValueError(f"mlearn data file {path} should hold a JSON list of structures")
    return [_record_to_atoms(r, f"{path.name}[{i}]") for i, r in enumerate(records)]


def extract_qm9_subset(csv_paths, ids=None) -> list[Atoms]:
    """The QM9 subset molecules (default: the paper's 77) from qm9pack CSV tables.

    Each molecule carries ``info`` keys ``qm9_id`` (0-based), ``gdb_index``, ``smiles`` and
    ``source``. Raises ``ValueError`` naming the IDs that are missing or whose atom count
    differs from the subset table.
    """
    expected = _expected_ids(ids)
    wanted = {i + 1: i for i in expected}
    found: dict[int, Atoms] = {}
    csv.field_size_limit(sys.maxsize)
    for path in csv_paths:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"Index", "Elements", "XYZ_Ang", "SMILES"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path} is not a qm9pack coordinate table: no column(s) "
                                 f"{', '.join(sorted(missing))}")
            for row in reader:
                index = int(row["Index"])
                if index not in wanted:
                    continue
                atoms = Atoms(
                    symbols=ast.literal_eval(row["Elements"]),
                    positions=ast.literal_eval(row["XYZ_Ang"]),
                )
                atoms.info.update(
                    qm9_id=wanted[index], gdb_index=index, smiles=row["SMILES"],
                    source=f"qm9pack:{Path(path).name}",
                )
                found[wanted[index]] = atoms
    return _checked_subset(expected, found, [str(p) for p in csv_paths])


def _expected_ids(ids) -> dict:
    """{QM9 id: atom count} of the paper's subset, or {id: None} for the given ``ids``."""
    if ids is None:
        return {i: n for n, group in QM9_SUBSET_IDS.items() for i in group}
    return {int(i): None for i in ids}


def _checked_subset(expected: dict, found: dict, source) -> list[Atoms]:
    """The molecules ``found`` ({QM9 id: Atoms}) in subset order (by size, then ID), after
    checking that every ``expected`` ID ({id: atom count or None}) is there with its count."""
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ValueError(f"QM9 IDs not found in {source}: {missing}")
    wrong = [i for i, n in expected.items() if n is not None and len(found[i]) != n]
    if wrong:
        raise ValueError(f"QM9 IDs with an atom count unlike the subset table: {wrong}")
    return [found[i] for i in sorted(expected, key=lambda i: (len(found[i]), i))]


def read_qm9_subset(path: str | Path = QM9_SUBSET_PATH) -> list[Atoms]:
    """The shipped QM9 subset (extxyz with qm9_id, gdb_index, smiles in each frame's info).

    The shipped file itself is checked against ``QM9_SUBSET_SHA256`` first (``ChecksumError``
    when it was changed or damaged); another file is read as it is.
    """
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"QM9 subset file not found: {path}")
    if path.resolve() == QM9_SUBSET_PATH.resolve():
        digest = sha256_of(path)
        if digest != QM9_SUBSET_SHA256:
            raise ChecksumError(f"{path}: sha256 {digest} is not the pinned {QM9_SUBSET_SHA256}; "
                                "the shipped QM9 subset was changed or damaged (reinstall milad)")
    frames = read(path, index=":")
    for i, atoms in enumerate(frames):
        if "qm9_id" not in atoms.info:
            raise ValueError(f"{path} frame {i} has no qm9_id: not a milad QM9 subset file")
    return frames


# ---------------------------------------------------------------------- QM9: the figshare archive

#: The canonical QM9 archive (Ramakrishnan et al. 2014, figshare, doi:10.6084/m9.figshare.978904):
#: ``dsgdb9nsd.xyz.tar.bz2`` holds one ``dsgdb9nsd_<gdb index, 6 digits>.xyz`` per molecule.
QM9_ARCHIVE_URL = "https://ndownloader.figshare.com/files/3195389"
QM9_ARCHIVE_NAME = "dsgdb9nsd.xyz.tar.bz2"
#: The MD5 figshare publishes for that file (its file record, file 3195389, 86,144,227 bytes;
#: figshare gives no sha256, so the archive is pinned by this digest). Not checked against the
#: archive itself here (figshare is unreachable from the development machines).
QM9_ARCHIVE_MD5 = "ad1ebd51ee7f5b3a6e32e974e5d54012"
#: Names of the 15 scalar properties on line 2 of a QM9 xyz file, after ``gdb <index>``.
QM9_PROPERTIES = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U",
                  "H", "G", "Cv")


def _qm9_float(text: str) -> float:
    """A QM9 number: Fortran/Mathematica style exponents such as ``1.2*^-6`` are allowed."""
    return float(text.replace("*^", "e"))


def parse_qm9_xyz(text: str, where: str = "QM9 xyz") -> Atoms:
    """One molecule in the QM9 (dsgdb9nsd) xyz format.

    Line 1: the number of atoms N; line 2: ``gdb <index>`` and the 15 properties of
    ``QM9_PROPERTIES``; N lines ``El x y z q`` (Angstrom, Mulliken charge q); then the
    harmonic frequencies, the SMILES of GDB-17 and of the relaxed geometry, and the two InChI.
    Numbers may be written ``1.2*^-6``.

    ``info``: ``gdb_index``, ``qm9_id`` (= gdb index - 1), ``smiles`` (GDB-17),
    ``smiles_relaxed``, ``inchi``, ``inchi_relaxed`` and the 15 properties; the charges are the
    initial charges, the frequencies ``info["frequencies"]``. Raises ``ValueError`` naming
    ``where`` and the line for a file that is not in this format.
    """
    lines = text.splitlines()
    try:
        n_atoms = int(lines[0].split()[0])
        header = lines[1].split()
        if header[0] != "gdb":
            raise ValueError(f"line 2 should start with 'gdb', got {lines[1][:40]!r}")
        index = int(header[1])
        properties = [_qm9_float(v) for v in header[2:]]
        if len(properties) != len(QM9_PROPERTIES):
            raise ValueError(
                f"line 2 has {len(properties)} properties, expected {len(QM9_PROPERTIES)}"
            )
        symbols, positions, charges = [], [], []
        for line in lines[2:2 + n_atoms]:
            fields = line.split()
            if len(fields) != 5:
                raise ValueError(f"atom line {line!r} should have 5 fields (El x y z charge)")
            symbols.append(fields[0])
            positions.append([_qm9_float(v) for v in fields[1:4]])
            charges.append(_qm9_float(fields[4]))
        if len(symbols) != n_atoms:
            raise ValueError(f"{len(symbols)} atom lines for {n_atoms} atoms")
        rest = lines[2 + n_atoms:]
        if len(rest) < 3:
            raise ValueError("the frequency, SMILES and InChI lines are missing")
        frequencies = [_qm9_float(v) for v in rest[0].split()]
        smiles = rest[1].split()
        inchi = rest[2].split()
        if len(smiles) != 2 or len(inchi) != 2:
            raise ValueError("the SMILES and InChI lines should hold two entries each")
    except (IndexError, ValueError) as error:
        raise ValueError(f"{where}: not a QM9 xyz file ({error})") from error
    atoms = Atoms(symbols=symbols, positions=positions)
    atoms.set_initial_charges(charges)
    atoms.info.update(
        gdb_index=index, qm9_id=index - 1, smiles=smiles[0], smiles_relaxed=smiles[1],
        inchi=inchi[0], inchi_relaxed=inchi[1], frequencies=np.array(frequencies),
        **dict(zip(QM9_PROPERTIES, properties)),
    )
    return atoms


def read_qm9_xyz(path: str | Path) -> Atoms:
    """One QM9 xyz file (``dsgdb9nsd_<index>.xyz``); see :func:`parse_qm9_xyz`."""
    path = Path(path)
    return parse_qm9_xyz(path.read_text(encoding="utf-8"), where=str(path))


def _qm9_xyz_index(name: str) -> int | None:
    stem = Path(name).name
    if not (stem.startswith("dsgdb9nsd_") and stem.endswith(".xyz")):
        return None
    try:
        return int(stem[len("dsgdb9nsd_"):-len(".xyz")])
    except ValueError:
        return None


def _subset_molecule(atoms: Atoms, source: str) -> Atoms:
    """The subset file's view of a QM9 molecule: symbols, positions and identifiers only."""
    out = Atoms(symbols=atoms.get_chemical_symbols(), positions=atoms.positions)
    out.info.update(
        qm9_id=int(atoms.info["qm9_id"]), gdb_index=int(atoms.info["gdb_index"]),
        smiles=atoms.info["smiles"], smiles_relaxed=atoms.info["smiles_relaxed"], source=source,
    )
    return out


def extract_qm9_subset_from_archive(archive: str | Path, ids=None) -> list[Atoms]:
    """The QM9 subset molecules (default: the paper's 77) from the figshare QM9 archive.

    archive: ``dsgdb9nsd.xyz.tar.bz2`` (any tar compression) or a folder of the extracted
    ``dsgdb9nsd_*.xyz`` files. Molecules come sorted like the shipped subset (atoms, then ID)
    with ``info`` keys ``qm9_id``, ``gdb_index``, ``smiles`` (GDB-17), ``smiles_relaxed`` and
    ``source``. Raises ``ValueError`` naming the IDs that are missing or whose atom count
    differs from the subset table.
    """
    import tarfile

    expected = _expected_ids(ids)
    wanted = {i + 1 for i in expected}
    archive = Path(archive)
    found: dict[int, Atoms] = {}
    if archive.is_dir():
        for index in sorted(wanted):
            path = archive / f"dsgdb9nsd_{index:06d}.xyz"
            if path.is_file():
                found[index - 1] = _subset_molecule(read_qm9_xyz(path), f"figshare:{path.name}")
    else:
        if not archive.is_file():
            raise FileNotFoundError(f"QM9 archive not found: {archive}")
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                index = _qm9_xyz_index(member.name)
                if index is None or index not in wanted or not member.isfile():
                    continue
                text = tar.extractfile(member).read().decode("utf-8")
                name = Path(member.name).name
                molecule = parse_qm9_xyz(text, where=f"{archive.name}:{member.name}")
                found[index - 1] = _subset_molecule(molecule, f"figshare:{name}")
                if len(found) == len(wanted):
                    break
    return _checked_subset(expected, found, archive)


def qm9pack_csv_paths() -> list[Path]:
    """The QM9 coordinate tables of the installed ``qm9pack`` package
    (``qm9pack/data/qm9_part*.csv``; its other tables, e.g. polarizabilities, hold no
    coordinates).

    Raises ``ModuleNotFoundError`` saying ``pip install qm9pack`` when it is not installed
    (a 104 MB wheel; milad does not depend on it).
    """
    import importlib.util

    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not (spec.origin or spec.submodule_search_locations):
        raise ModuleNotFoundError(
            "the QM9 source 'qm9pack' needs the qm9pack package, which is not installed: run "
            "`pip install qm9pack` (a 104 MB wheel), or choose the source 'shipped' or 'figshare'",
            name="qm9pack",
        )
    roots = [Path(p) for p in (spec.submodule_search_locations or [Path(spec.origin).parent])]
    paths = sorted(p for root in roots for p in (root / "data").glob("qm9_part*.csv"))
    if not paths:
        raise FileNotFoundError(
            f"the installed qm9pack ({', '.join(map(str, roots))}) has no data/qm9_part*.csv tables; "
            "reinstall it with `pip install --force-reinstall qm9pack`"
        )
    return paths


def qm9_subset_differences(molecules, reference, atol: float = 1e-6) -> list[str]:
    """How the QM9 molecules ``molecules`` differ from ``reference`` (e.g. the shipped subset).

    Compared in order: the QM9 IDs, the chemical symbols, the positions (to ``atol``
    Angstrom) and the SMILES (a molecule carrying ``smiles_relaxed`` matches when either of its
    two SMILES equals the reference's). Returns one line per difference; ``[]`` when equal.
    """
    ids = [int(a.info["qm9_id"]) for a in molecules]
    reference_ids = [int(a.info["qm9_id"]) for a in reference]
    if ids != reference_ids:
        extra = sorted(set(ids) - set(reference_ids))
        lacking = sorted(set(reference_ids) - set(ids))
        return [f"the QM9 IDs differ: extra {extra}, missing {lacking}"
                + ("" if extra or lacking else " (same IDs, another order)")]
    problems = []
    for atoms, ref in zip(molecules, reference):
        name = f"QM9 ID {ref.info['qm9_id']}"
        if atoms.get_chemical_symbols() != ref.get_chemical_symbols():
            problems.append(f"{name}: atoms {atoms.get_chemical_formula()} in the order "
                            f"{''.join(atoms.get_chemical_symbols())}, reference "
                            f"{''.join(ref.get_chemical_symbols())}")
            continue
        deviation = float(np.max(np.abs(atoms.positions - ref.positions)))
        if not deviation <= atol:
            problems.append(f"{name}: positions differ by up to {deviation:.3g} A (> {atol:g} A)")
        smiles = {atoms.info.get("smiles"), atoms.info.get("smiles_relaxed")} - {None}
        if ref.info.get("smiles") not in smiles:
            problems.append(
                f"{name}: SMILES {sorted(smiles)}, reference {ref.info.get('smiles')!r}"
            )
    return problems


# ---------------------------------------------------------------------- mlearn: fetch / mirror

#: The canonical mlearn repository and the commit every file is taken from.
MLEARN_REPOSITORY = "materialsvirtuallab/mlearn"
MLEARN_COMMIT = "10c427a5480c6281c15c64efaf869b03be04818f"
MLEARN_ELEMENTS = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")
MLEARN_SPLITS = ("training", "test")

#: sha256 of ``data/<element>/<split>.json`` at ``MLEARN_COMMIT``. ``None``: no checksum is
#: pinned (Ni and Cu training files could not be obtained to pin one); such a file is accepted
#: from a download with a warning and its digest is recorded, unless one is passed explicitly.
MLEARN_SHA256: dict[tuple[str, str], str | None] = {
    ("Ni", "training"): None,
    ("Ni", "test"): "dccbfa14ddff5d1d35f658c48b68f6b431f95496a5261ef8b8f4d1d41e36008a",
    ("Cu", "training"): None,
    ("Cu", "test"): "1805a315ce8d0ce4a18bb761df4c4f619909ce114d598d426015d0071edc98c2",
    ("Li", "training"): "1cac01475c5a4fb85771ee1fd23366a6b8abfb9891e0c9e088b6e37228e147b3",
    ("Li", "test"): "554d0ce60b35a07b357be3a80bf04f68eb8fc97b5a88328caf08c860b5e9b260",
    ("Mo", "training"): "b13305fca0d0d2631ab080c8fcf13c743ee79a911712fb65a34ca88fadf09f9a",
    ("Mo", "test"): "68169e2927c2115daa2f504805fcb9548ee65daf2dd015428807ba92f8e13bb8",
    ("Si", "training"): "ae6d4b0a65b00e0fcf7ba0a6fad366716710d2f0d21d70199203089c6866b500",
    ("Si", "test"): "d452b30a89f23bff76f7cc529b7b6c2d159ea81ccd5a4599fb1a18207654fa91",
    ("Ge", "training"): "43dee02009a5167f94c7aafce19051222bcfc328c46181750cc2a2018187ca00",
    ("Ge", "test"): "737ea6159c9dd27ebee7fb8ffae22f15e20466884927771248ca4f5b2cd3f093",
}


#: Folder of the shipped copies, ``<element>/<split>.json.xz`` (xz of the original bytes).
MLEARN_EMBEDDED_DIR = DATA_DIR / "mlearn"


class ChecksumError(ValueError):
    """A data file whose sha256 differs from the pinned one (corrupt, truncated or replaced)."""


class DataUnavailableError(FileNotFoundError):
    """A data file that could be taken neither from the mirror nor from its download."""


@dataclass(frozen=True)
class FetchedFile:
    """Where a fetched file lies and how it got there.

    source: ``"embedded"`` (shipped with milad), ``"mirror"``, ``"cache"`` (already at the
    destination and verified) or ``"download"``; verified: whether the file was checked
    against a pinned digest (its sha256, or the MD5 its source publishes).
    """

    path: Path
    source: str
    sha256: str
    verified: bool
    url: str


def mlearn_url(element: str, split: str, commit: str = MLEARN_COMMIT) -> str:
    """Raw GitHub address of ``data/<element>/<split>.json`` at ``commit``."""
    _check_mlearn_name(element, split)
    return (
        f"https://raw.githubusercontent.com/{MLEARN_REPOSITORY}/{commit}/data/{element}/{split}.json"
    )


def mlearn_embedded_path(element: str, split: str,
                         folder: str | Path | None = None) -> Path | None:
    """The shipped ``<element>/<split>.json.xz`` (in ``folder``, default
    ``MLEARN_EMBEDDED_DIR``), or ``None`` when milad does not ship that file."""
    _check_mlearn_name(element, split)
    path = Path(MLEARN_EMBEDDED_DIR if folder is None else folder) / element / f"{split}.json.xz"
    return path if path.is_file() else None


def _check_mlearn_name(element: str, split: str) -> None:
    if split not in MLEARN_SPLITS:
        raise ValueError(f"unknown mlearn split {split!r}; choose one of {MLEARN_SPLITS}")
    if not (isinstance(element, str) and element.isalpha() and 1 <= len(element) <= 2):
        raise ValueError(f"not a chemical symbol: {element!r}")


def _urllib_download(url: str, destination: Path, timeout: float = 60.0) -> None:
    """Default downloader: ``url`` to ``destination`` with urllib (no third-party client)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out)


def _verify(path: Path, expected: str | None, what: str, expected_md5: str | None = None) -> str:
    """sha256 of ``path`` (returned), checked against ``expected`` and, when given, the MD5
    against ``expected_md5``; ``ChecksumError`` on a mismatch."""
    actual = sha256_of(path)
    if expected is not None and actual != expected.lower():
        raise ChecksumError(
            f"{what}: sha256 mismatch for {path} (expected {expected}, got {actual}); "
            "the file is corrupt, truncated or not the pinned version"
        )
    if expected_md5 is not None:
        md5 = _file_digest(path, hashlib.md5(usedforsecurity=False))
        if md5 != expected_md5.lower():
            raise ChecksumError(
                f"{what}: MD5 mismatch for {path} (expected {expected_md5}, the digest its "
                f"source publishes; got {md5}); the file is corrupt, truncated or not the "
                "published version"
            )
    return actual


def fetch_mlearn(
    element: str,
    split: str,
    destination: str | Path,
    mirror: str | Path | None = None,
    download: bool = True,
    expected_sha256: str | None = "pinned",
    commit: str = MLEARN_COMMIT,
    downloader: Callable[[str, Path], None] | None = None,
    embedded: str | Path | None = "shipped",
) -> FetchedFile:
    """Put the verified mlearn ``<element>/<split>.json`` at ``destination``.

    Order: the copy shipped with milad (``embedded``: ``"shipped"`` is ``MLEARN_EMBEDDED_DIR``,
    a path: another folder of ``<element>/<split>.json.xz``, ``None`` none; pinned commit and
    digest only), decompressed; then a copy in ``mirror`` (``mirror/<element>/<split>.json``)
    when one is configured; then a file already at ``destination`` that verifies; then, when
    ``download`` is true, the raw GitHub file at ``commit`` through ``downloader(url, path)``
    (default: urllib).

    expected_sha256: ``"pinned"`` uses ``MLEARN_SHA256`` (the pinned commit only); ``None``
    accepts any content (a ``UserWarning`` says it was not verified).

    Raises ``ChecksumError`` when the only file found is corrupt and nothing better can be had,
    and ``DataUnavailableError`` (one message naming every place tried) when there is none.
    """
    _check_mlearn_name(element, split)
    what = f"mlearn {element}/{split}.json"
    if expected_sha256 == "pinned":
        expected_sha256 = MLEARN_SHA256.get((element, split)) if commit == MLEARN_COMMIT else None
    mirrored = None if mirror is None else Path(mirror) / element / f"{split}.json"
    shipped = None
    if embedded is not None and commit == MLEARN_COMMIT and expected_sha256 is not None:
        shipped = mlearn_embedded_path(element, split,
                                       None if embedded == "shipped" else embedded)
    earlier, damaged = [], False
    if shipped is not None:
        try:
            return _unpack_embedded(shipped, Path(destination), expected_sha256, what,
                                    mlearn_url(element, split, commit))
        except ChecksumError as error:
            earlier, damaged = [f"the embedded copy {shipped} is corrupt ({error})"], True
    elif embedded is not None:
        earlier = ["not shipped with milad"]
    fetched = _fetch_file(
        what, mlearn_url(element, split, commit), Path(destination), mirrored,
        expected_sha256=expected_sha256, download=download, downloader=downloader,
        pin_hint="pass expected_sha256 to pin it", mirror_name=f"mirror {mirror}",
        mirror_kind="mirror", earlier=earlier, earlier_corrupt=damaged,
    )
    if damaged:
        warnings.warn(f"{earlier[0]}; taken from the {fetched.source} instead; reinstall milad",
                      UserWarning, stacklevel=2)
    return fetched


def _unpack_embedded(shipped: Path, destination: Path, expected: str, what: str,
                     url: str) -> FetchedFile:
    """Decompress a shipped ``.json.xz`` to ``destination`` (through a temporary file, renamed
    only once its sha256 equals ``expected``); ``ChecksumError`` when it does not or the xz
    stream is damaged."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digests = []
    try:
        with lzma.open(shipped, "rb") as source, atomic_output(
                destination, verify=lambda path: digests.append(_verify(path, expected, what))
        ) as out:
            shutil.copyfileobj(source, out)
    except (lzma.LZMAError, EOFError) as error:
        raise ChecksumError(f"{what}: {shipped} is not a valid xz file ({error})") from error
    return FetchedFile(destination, "embedded", digests[0], True, url)


def _fetch_file(
    what: str,
    url: str,
    destination: Path,
    mirrored: Path | None,
    *,
    expected_sha256: str | None,
    download: bool,
    downloader: Callable[[str, Path], None] | None,
    pin_hint: str,
    mirror_name: str,
    mirror_kind: str,
    expected_md5: str | None = None,
    earlier: tuple[str, ...] | list[str] = (),
    earlier_corrupt: bool = False,
) -> FetchedFile:
    """Shared order of ``fetch_mlearn`` and ``fetch_qm9_archive``: the mirrored file when one
    is given, then a verified file already at ``destination``, then a download (written to a
    temporary file and renamed once verified, so neither an interrupted nor a corrupt download
    ever lies under the final name: :func:`milad.io.atomic_path`). Unpinned files (neither
    ``expected_sha256`` nor ``expected_md5``) are accepted with a ``UserWarning`` giving the
    digest.
    mirror_name names the mirror in that warning; mirror_kind ("mirror", "local copy") in the
    error messages. earlier: why sources tried before (the embedded copy) gave nothing; they
    open the error message; earlier_corrupt: one was corrupt (any failure is then a
    ``ChecksumError``).
    """
    problems: list[str] = list(earlier)
    corrupt: ChecksumError | None = ChecksumError(problems[0]) if earlier_corrupt else None
    pinned = expected_sha256 is not None or expected_md5 is not None

    def verify(path: Path) -> str:
        return _verify(path, expected_sha256, what, expected_md5)

    def unverified_warning(source: str, digest: str) -> None:
        warnings.warn(
            f"{what} from {source} has no pinned sha256; accepted unverified "
            f"(sha256 {digest}); {pin_hint}",
            UserWarning,
            stacklevel=4,
        )

    if mirrored is not None:
        if mirrored.is_file():
            try:
                digest = verify(mirrored)
            except ChecksumError as error:
                corrupt = error
                problems.append(f"{mirror_kind} copy {mirrored} is corrupt ({error})"
                                if mirror_kind == "mirror" else f"{mirror_kind} {mirrored} is corrupt ({error})")
            else:
                if not pinned:
                    unverified_warning(mirror_name, digest)
                if destination.resolve() != mirrored.resolve():
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with open(mirrored, "rb") as source, atomic_output(destination) as out:
                        shutil.copyfileobj(source, out)
                return FetchedFile(destination, "mirror", digest, pinned, url)
        else:
            problems.append(f"not in the mirror (no file {mirrored})" if mirror_kind == "mirror"
                            else f"no {mirror_kind} (no file {mirrored})")
    if destination.is_file() and pinned:
        try:
            digest = verify(destination)
        except ChecksumError:
            problems.append(f"the existing {destination} is corrupt; it is replaced")
        else:
            return FetchedFile(destination, "cache", digest, True, url)
    if not download:
        problems.append("downloads are disabled")
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        digests = []
        try:
            with atomic_path(destination, lambda path: digests.append(verify(path))) as partial:
                (downloader or _urllib_download)(url, partial)
        except ChecksumError as error:
            corrupt = error
            problems.append(f"the download from {url} is corrupt ({error})")
        except Exception as error:  # any network or client failure: report it, do not crash
            problems.append(f"download from {url} failed ({type(error).__name__}: {error})")
        else:
            digest = digests[0]
            if not pinned:
                unverified_warning(url, digest)
            return FetchedFile(destination, "download", digest, pinned, url)
    message = f"{what} is unavailable: " + "; ".join(problems)
    if corrupt is not None:
        raise ChecksumError(message)
    raise DataUnavailableError(message)




def fetch_mlearn_all(
    destination_dir: str | Path,
    elements=MLEARN_ELEMENTS,
    splits=MLEARN_SPLITS,
    **options,
) -> tuple[dict[tuple[str, str], FetchedFile], dict[tuple[str, str], str]]:
    """Fetch every ``<element>/<split>.json`` into ``destination_dir/<element>/<split>.json``.

    Never stops at the first failure: returns ``(fetched, errors)`` where ``errors`` holds one
    message per file that could not be had (missing or corrupt). ``options`` go to
    :func:`fetch_mlearn`.
    """
    fetched, errors = {}, {}
    for element in elements:
        for split in splits:
            target = Path(destination_dir) / element / f"{split}.json"
            try:
                fetched[(element, split)] = fetch_mlearn(element, split, target, **options)
            except (ChecksumError, DataUnavailableError) as error:
                errors[(element, split)] = str(error)
    return fetched, errors


def missing_data_summary(manifests) -> list[str]:
    """One line per mlearn file the pipeline could not have, from the ``manifest.json`` files
    of rule ``mlearn_data`` (``available: false``): the file, why, and what it costs. Paths
    that do not exist (jobs that did not run) are skipped."""
    lines = []
    for path in manifests:
        path = Path(path)
        if not path.is_file():
            continue
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("available", True):
            continue
        element, split = manifest["element"], manifest["split"]
        cost = (f"no {element} potential is trained: its rows and figures say 'missing'"
                if split == "training" else f"{element} is not evaluated on its test set")
        lines.append(f"{element} {split} data MISSING ({path.parent}): {manifest['reason']} "
                     f"-> {cost}")
    return lines


# ---------------------------------------------------------------------- QM9: fetch / mirror


def fetch_qm9_archive(
    destination: str | Path,
    mirror: str | Path | None = None,
    download: bool = True,
    expected_sha256: str | None = None,
    url: str = QM9_ARCHIVE_URL,
    downloader: Callable[[str, Path], None] | None = None,
    expected_md5: str | None = QM9_ARCHIVE_MD5,
) -> FetchedFile:
    """Put the QM9 archive ``dsgdb9nsd.xyz.tar.bz2`` at ``destination``, checksum-checked.

    Order: the local copy ``mirror`` (the archive file itself) when one is given; then a file
    already at ``destination`` that verifies against ``expected_sha256``; then, when
    ``download`` is true, ``url`` (the figshare file) through ``downloader(url, path)``
    (default: urllib). expected_md5: the MD5 figshare publishes (default); expected_sha256: an
    optional sha256 on top. Both ``None`` accepts any content with a ``UserWarning`` that gives
    the sha256 to pin.

    Raises ``ChecksumError`` when the only file found is corrupt and nothing better can be had,
    and ``DataUnavailableError`` (one message naming every place tried) when there is none.
    """
    return _fetch_file(
        f"QM9 archive {QM9_ARCHIVE_NAME}", url, Path(destination),
        None if mirror is None else Path(mirror), expected_sha256=expected_sha256,
        download=download, downloader=downloader,
        pin_hint="set qm9.figshare.sha256 (or pass expected_sha256) to pin it",
        mirror_name=f"local copy {mirror}", mirror_kind="local copy", expected_md5=expected_md5,
    )
