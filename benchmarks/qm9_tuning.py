"""A tuning set for the decoder: QM9 molecules that are not among the paper's 77.

    python benchmarks/qm9_tuning.py [--seed 20261202] [--out benchmarks/qm9_tuning.xyz]

Draws, for every atom count of the paper's subset, as many other QM9 molecules (fixed seed)
as the subset has, keeping only molecules inside the 5 A cutoff sphere (as the 77 are); QM9
has no other 3-atom molecule and one other 4-atom one. Needs ``pip install qm9pack`` (the
coordinate tables, 104 MB). Decoder settings are chosen on the molecules it writes
(``python benchmarks/decode.py --molecules benchmarks/qm9_tuning.xyz``), so that the 77 the
benchmark reports stay a test. The shipped file was made with the default seed.
"""

from __future__ import annotations

import argparse
import ast
import collections
import csv
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from milad.data import qm9pack_csv_paths, read_qm9_subset
from milad.qm9 import descriptors


def tuning_molecules(seed: int) -> list[Atoms]:
    """Other QM9 molecules with the atom counts of the paper's subset, by size then gdb index."""
    subset = read_qm9_subset()
    wanted = collections.Counter(len(m) for m in subset)
    taken = {int(m.info["gdb_index"]) for m in subset}
    plain, _ = descriptors()
    rows: dict[int, list[tuple[int, dict]]] = collections.defaultdict(list)
    csv.field_size_limit(sys.maxsize)
    for path in qm9pack_csv_paths():
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                index = int(row["Index"])
                size = row["Elements"].count(",") + 1
                if index not in taken and size in wanted:
                    rows[size].append((index, row))
    rng = np.random.default_rng(seed)
    chosen = []
    for size in sorted(wanted):
        candidates = sorted(rows[size], key=lambda item: item[0])
        kept = []
        for k in rng.permutation(len(candidates)):
            if len(kept) == wanted[size]:
                break
            index, row = candidates[k]
            atoms = Atoms(symbols=ast.literal_eval(row["Elements"]),
                          positions=ast.literal_eval(row["XYZ_Ang"]))
            try:
                plain.molecule(atoms)  # inside the cutoff sphere
            except ValueError:
                continue
            atoms.info.update(qm9_id=index - 1, gdb_index=index, smiles=row["SMILES"])
            kept.append(atoms)
        chosen.extend(sorted(kept, key=lambda a: a.info["gdb_index"]))
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--out", default=str(Path(__file__).with_name("qm9_tuning.xyz")))
    args = parser.parse_args(argv)
    molecules = tuning_molecules(args.seed)
    write(args.out, molecules, format="extxyz")
    sizes = collections.Counter(len(m) for m in molecules)
    print(f"{len(molecules)} molecules -> {args.out}; atoms: molecules "
          + ", ".join(f"{n}: {c}" for n, c in sorted(sizes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
