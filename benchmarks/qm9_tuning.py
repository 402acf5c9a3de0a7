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
import collections
import csv
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from milad.data import extract_qm9_subset, qm9pack_csv_paths, read_qm9_subset
from milad.qm9 import descriptors

DRAWN_PER_MOLECULE = 10  # candidates read per molecule wanted (some lie outside the cutoff)


def tuning_molecules(seed: int) -> list[Atoms]:
    """Other QM9 molecules with the atom counts of the paper's subset, by size then QM9 ID."""
    wanted = collections.Counter(len(m) for m in read_qm9_subset())
    taken = {int(m.info["qm9_id"]) for m in read_qm9_subset()}
    paths = qm9pack_csv_paths()
    by_size = collections.defaultdict(list)  # QM9 IDs of the other molecules, by atom count
    csv.field_size_limit(sys.maxsize)
    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                qm9_id, size = int(row["Index"]) - 1, row["Elements"].count(",") + 1
                if qm9_id not in taken and size in wanted:
                    by_size[size].append(qm9_id)
    rng = np.random.default_rng(seed)
    drawn = {}  # per size: candidate IDs in the order drawn
    for size in sorted(wanted):
        ids = sorted(by_size[size])
        drawn[size] = [ids[k] for k in rng.permutation(len(ids))][:DRAWN_PER_MOLECULE * wanted[size]]
    candidates = {int(m.info["qm9_id"]): m for m in
                  extract_qm9_subset(paths, ids=[i for ids in drawn.values() for i in ids])}
    plain, _ = descriptors()
    chosen = []
    for size, ids in drawn.items():
        kept = []
        for qm9_id in ids:
            try:
                plain.molecule(candidates[qm9_id])  # inside the cutoff sphere
            except ValueError:
                continue
            kept.append(candidates[qm9_id])
            if len(kept) == wanted[size]:
                break
        chosen.extend(sorted(kept, key=lambda m: m.info["qm9_id"]))
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
