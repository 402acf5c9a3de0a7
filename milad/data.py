"""Data sets: readers for the formats the pipeline pulls in.

mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): a JSON list of records whose
``structure`` is a pymatgen Structure dictionary (``lattice.matrix``, ``sites[i].xyz`` in
Angstrom, ``sites[i].species[0].element``) and ``outputs`` holds the DFT ``energy`` (eV, total)
and ``forces`` (eV/Angstrom). Read without pymatgen.

QM9 (Ramakrishnan et al., Sci. Data 1, 140022 (2014)): the paper's 77-molecule reconstruction
subset (supplementary "Reconstruction experiment"; QM9 ID k is gdb entry k + 1) ships with the
package as ``milad/data/qm9_subset.extxyz``; ``extract_qm9_subset`` regenerates it from the
``qm9pack`` CSV tables (columns ``Index`` = gdb index, ``Elements``, ``XYZ_Ang``, ``SMILES``).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = [
    "QM9_SUBSET_IDS",
    "QM9_SUBSET_PATH",
    "extract_qm9_subset",
    "read_mlearn",
    "read_qm9_subset",
    "sha256_of",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
QM9_SUBSET_PATH = DATA_DIR / "qm9_subset.extxyz"

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
    """Hex sha256 digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
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
    """Structures of one mlearn JSON file as periodic ``ase.Atoms`` with energy and forces."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mlearn data file not found: {path}")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
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
    expected = {i: n for n, group in QM9_SUBSET_IDS.items() for i in group} if ids is None else {
        int(i): None for i in ids
    }
    wanted = {i + 1: i for i in expected}
    found: dict[int, Atoms] = {}
    csv.field_size_limit(sys.maxsize)
    for path in csv_paths:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
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
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ValueError(f"QM9 IDs not found in {[str(p) for p in csv_paths]}: {missing}")
    wrong = [i for i, n in expected.items() if n is not None and len(found[i]) != n]
    if wrong:
        raise ValueError(f"QM9 IDs with an atom count unlike the subset table: {wrong}")
    return [found[i] for i in sorted(expected, key=lambda i: (len(found[i]), i))]


def read_qm9_subset(path: str | Path = QM9_SUBSET_PATH) -> list[Atoms]:
    """The shipped QM9 subset (extxyz with qm9_id, gdb_index, smiles in each frame's info)."""
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"QM9 subset file not found: {path}")
    frames = read(path, index=":")
    for i, atoms in enumerate(frames):
        if "qm9_id" not in atoms.info:
            raise ValueError(f"{path} frame {i} has no qm9_id: not a milad QM9 subset file")
    return frames
