"""Fingerprint throughput on one core: environments per second, with and without derivatives.

    python benchmarks/fingerprints.py [--mlearn DIR] [--repeats 3]

Cases (n_max = 7, the shipped 117-invariant set):
* every atom-centred environment of the mlearn Si training structures (cutoff 4.7 A), read
  from the local mirror (default ../shared/data/mlearn next to the repository);
* the 77 molecules of the paper's QM9 subset (cutoff 5 A), positions only and with species.
Prints a markdown table and the process's peak resident memory. Threads are pinned to one
before numpy loads, so the numbers are single-core.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from milad.data import read_mlearn, read_qm9_subset  # noqa: E402
from milad.descriptor import Descriptor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def each(function, items):
    """Call ``function`` on every item, keeping no result (as a streaming user would)."""
    def run():
        for item in items:
            function(item)
    return run


def best_rate(function, n_environments: int, repeats: int) -> float:
    function()  # compile and warm caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return n_environments / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlearn", type=Path, default=ROOT.parent / "shared" / "data" / "mlearn",
                        help="mlearn mirror directory holding Si/training.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows = []
    silicon = read_mlearn(args.mlearn / "Si" / "training.json")
    n_si = sum(len(a) for a in silicon)
    local = Descriptor(n_max=7, cutoff=4.7)
    rows.append(("mlearn Si training, atom-centred", n_si, "no",
                 best_rate(each(local.local, silicon), n_si, args.repeats)))
    rows.append(("mlearn Si training, atom-centred", n_si, "positions",
                 best_rate(each(local.local_derivatives, silicon), n_si, args.repeats)))

    molecules = read_qm9_subset()
    for label, species in (("QM9 subset molecules, positions", None),
                           ("QM9 subset molecules, species", "H,C,N,O,F")):
        descriptor = Descriptor(n_max=7, cutoff=5.0, species=species)
        rows.append((label + " (with miniball centring)", len(molecules), "no",
                     best_rate(lambda: descriptor.molecules(molecules), len(molecules), args.repeats)))
        centred = [a.copy() for a in molecules]
        for atoms in centred:
            atoms.positions = descriptor.molecule_positions(atoms)
        rows.append((label + " (pre-centred)", len(molecules), "no",
                     best_rate(lambda: descriptor.molecules(centred, centre=False), len(molecules),
                               args.repeats)))
        prepared = [(a.positions, descriptor.weights_of(a.get_chemical_symbols())) for a in centred]
        rows.append((label + " (pre-centred)", len(molecules), "positions+weights",
                     best_rate(each(lambda pw: descriptor.environment_derivatives(*pw), prepared),
                               len(molecules), args.repeats)))

    print("| case | environments | derivatives | environments/s (1 core) |")
    print("|---|---:|---|---:|")
    for label, count, derivatives, rate in rows:
        print(f"| {label} | {count} | {derivatives} | {rate:,.0f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
