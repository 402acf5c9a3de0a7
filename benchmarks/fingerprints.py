"""Fingerprint throughput on one core: environments per second, with and without derivatives.

    python benchmarks/fingerprints.py [--mlearn DIR] [--repeats 3] [--chiral] [--si-structures N]

Cases (n_max = 7, the shipped 117-invariant set):
* every atom-centred environment of the mlearn Si training structures (cutoff 4.7 A), read
  from the local mirror (default ../shared/data/mlearn next to the repository);
* the 77 molecules of the paper's QM9 subset (cutoff 5 A), positions only and with species.
With --chiral every case also with the chiral fingerprint (``chiral=True``: the parity-odd
invariants appended, 117 + 5), the two timed in turn (so that load from other work hits both
alike), and the ratio of the times.
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


def best_rates(functions, n_environments: int, repeats: int) -> list[float]:
    """Environments per second of each function, best of ``repeats`` runs, the functions run
    in turn (in alternating order) so that a shared machine's load hits them alike."""
    for function in functions:
        function()  # compile and warm caches
    best = [float("inf")] * len(functions)
    for repeat in range(repeats):
        order = range(len(functions)) if repeat % 2 == 0 else reversed(range(len(functions)))
        for i in order:
            start = time.perf_counter()
            functions[i]()
            best[i] = min(best[i], time.perf_counter() - start)
    return [n_environments / b for b in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlearn", type=Path, default=ROOT.parent / "shared" / "data" / "mlearn",
                        help="mlearn mirror directory holding Si/training.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--si-structures", type=int, default=None,
                        help="only the first N Si training structures (default: all)")
    parser.add_argument("--chiral", action="store_true",
                        help="also the chiral fingerprint (parity-odd invariants appended)")
    args = parser.parse_args()
    variants = (False, True) if args.chiral else (False,)

    def rates(make, n_environments):
        """make(chiral) -> the function to time; its rate for each fingerprint."""
        return best_rates([make(chiral) for chiral in variants], n_environments, args.repeats)

    rows = []
    silicon = read_mlearn(args.mlearn / "Si" / "training.json")[:args.si_structures]
    n_si = sum(len(a) for a in silicon)
    local = {chiral: Descriptor(n_max=7, cutoff=4.7, chiral=chiral) for chiral in variants}
    rows.append(("mlearn Si training, atom-centred", n_si, "no",
                 rates(lambda chiral: each(local[chiral].local, silicon), n_si)))
    rows.append(("mlearn Si training, atom-centred", n_si, "positions",
                 rates(lambda chiral: each(local[chiral].local_derivatives, silicon), n_si)))

    molecules = read_qm9_subset()
    for label, species in (("QM9 subset molecules, positions", None),
                           ("QM9 subset molecules, species", "H,C,N,O,F")):
        descriptor = {chiral: Descriptor(n_max=7, cutoff=5.0, species=species, chiral=chiral)
                      for chiral in variants}
        rows.append((label + " (with miniball centring)", len(molecules), "no",
                     rates(lambda chiral: lambda: descriptor[chiral].molecules(molecules),
                           len(molecules))))
        centred = [a.copy() for a in molecules]
        for atoms in centred:
            atoms.positions = descriptor[False].molecule_positions(atoms)
        rows.append((label + " (pre-centred)", len(molecules), "no",
                     rates(lambda chiral: lambda: descriptor[chiral].molecules(centred, centre=False),
                           len(molecules))))
        prepared = [(a.positions, descriptor[False].weights_of(a.get_chemical_symbols()))
                    for a in centred]
        rows.append((label + " (pre-centred)", len(molecules), "positions+weights",
                     rates(lambda chiral: each(lambda pw: descriptor[chiral].environment_derivatives(*pw),
                                               prepared), len(molecules))))

    header = "| case | environments | derivatives | environments/s (1 core) |"
    print(header + (" chiral=True: environments/s | time chiral / default |" if args.chiral else ""))
    print("|---|---:|---|---:|" + ("---:|---:|" if args.chiral else ""))
    for label, count, derivatives, rate in rows:
        line = f"| {label} | {count} | {derivatives} | {rate[0]:,.0f} |"
        if args.chiral:
            line += f" {rate[1]:,.0f} | {rate[0] / rate[1]:.2f} |"
        print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
