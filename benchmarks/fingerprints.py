"""Fingerprint throughput on one core: environments per second, with and without derivatives.

    python benchmarks/fingerprints.py [--mlearn DIR] [--repeats 3] [--structures N]
                                      [--clock cpu|wall] [--chiral]

Cases (n_max = 7, the shipped 117-invariant set):
* every atom-centred environment of the mlearn Si training structures (cutoff 4.7 A), the
  copy shipped with milad (or ``--mlearn DIR/Si/training.json``), values and pair derivatives;
* the same environments with featomic's SOAP power spectrum (GTO radial basis, max_radial 7,
  max_angular 7, Gaussian width 0.5 A, shifted-cosine cutoff of width 0.5 A), with and
  without position gradients, in the same process, and MILAD's speed-up over it; skipped
  with a note when featomic (the ``benchmarks`` extra) is not installed;
* the 77 molecules of the paper's QM9 subset (cutoff 5 A), positions only and with species;
* with ``--chiral``, the Si environments also with the chiral fingerprint (``chiral=True``:
  the 5 parity-odd invariants appended), values and pair derivatives.
Rates are environments per CPU second of this (single-threaded) process by default, steady on
a shared machine; ``--clock wall`` times elapsed seconds instead. Prints a markdown table,
which compiled path ran (CPU the kernels target, BLAS and its
threads) and the process's peak resident memory. Threads are pinned to one before numpy
loads, so the numbers are single-core.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "RAYON_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from milad.data import mlearn_embedded_path, read_mlearn, read_qm9_subset  # noqa: E402
from milad.descriptor import Descriptor, compute_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def each(function, items):
    """Call ``function`` on every item, keeping no result (as a streaming user would)."""
    def run():
        for item in items:
            function(item)
    return run


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def best_rate(function, n_environments: int, repeats: int) -> float:
    function()  # compile and warm caches
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        function()
        best = min(best, clock() - start)
    return n_environments / best


#: structures per featomic call: few calls, bounded memory (its gradients of the whole file
#: at once would take gigabytes)
FEATOMIC_CHUNK = 64


def featomic_rates(frames, n_environments: int, repeats: int) -> dict[str, float] | None:
    """SOAP power spectrum rates (environments/s) of featomic without and with position
    gradients, or None when featomic is not installed."""
    try:
        from featomic import SoapPowerSpectrum
    except ImportError:
        return None
    calculator = SoapPowerSpectrum(
        cutoff={"radius": 4.7, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        density={"type": "Gaussian", "width": 0.5},
        basis={"type": "TensorProduct", "max_angular": 7,
               "radial": {"type": "Gto", "max_radial": 7}},
    )
    chunks = [frames[i:i + FEATOMIC_CHUNK] for i in range(0, len(frames), FEATOMIC_CHUNK)]
    return {derivatives: best_rate(each(lambda chunk: calculator.compute(chunk, gradients=gradients),
                                        chunks), n_environments, repeats)
            for derivatives, gradients in (("no", None), ("positions", ["positions"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlearn", type=Path, default=None,
                        help="mlearn directory holding Si/training.json (default: the copy "
                             "shipped with milad)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--structures", type=int, default=None,
                        help="only the first N Si training structures (a quick run)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: this process's CPU seconds (one thread, so one core; steady "
                             "on a shared machine), wall: elapsed seconds")
    parser.add_argument("--chiral", action="store_true",
                        help="also time the chiral fingerprint (117 + 5 invariants) on Si")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]

    rows = []
    path = (mlearn_embedded_path("Si", "training") if args.mlearn is None
            else args.mlearn / "Si" / "training.json")
    silicon = read_mlearn(path)[:args.structures]
    n_si = sum(len(a) for a in silicon)
    local = Descriptor(n_max=7, cutoff=4.7)

    def derivatives(atoms):
        return local.local_derivatives(atoms).derivatives

    milad = {"no": best_rate(each(local.local, silicon), n_si, args.repeats),
             "positions": best_rate(each(derivatives, silicon), n_si, args.repeats)}
    for kind, rate in milad.items():
        rows.append(("mlearn Si training, atom-centred", n_si, kind, rate))
    if args.chiral:
        chiral = Descriptor(n_max=7, cutoff=4.7, chiral=True)
        rows.append(("mlearn Si training, atom-centred, chiral", n_si, "no",
                     best_rate(each(chiral.local, silicon), n_si, args.repeats)))
        rows.append(("mlearn Si training, atom-centred, chiral", n_si, "positions",
                     best_rate(each(lambda a: chiral.local_derivatives(a).derivatives, silicon),
                               n_si, args.repeats)))
    soap = featomic_rates(silicon, n_si, args.repeats)
    if soap is not None:
        import featomic

        for kind, rate in soap.items():
            rows.append((f"mlearn Si training, featomic {featomic.__version__} SOAP power "
                         "spectrum", n_si, kind, rate))

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

    print(f"| case | environments | derivatives | environments/s (1 core, {args.clock} time) |")
    print("|---|---:|---|---:|")
    for label, count, kind, rate in rows:
        print(f"| {label} | {count} | {kind} | {rate:,.0f} |")
    print()
    if soap is None:
        print("featomic is not installed (pip install -e '.[benchmarks]'): no comparison")
    else:
        for kind, target in (("no", 2), ("positions", 5)):
            ratio = milad[kind] / soap[kind]
            print(f"MILAD / featomic, derivatives {kind}: {ratio:.2f}x (issue 14 target: "
                  f"{target}x, {'met' if ratio >= target else 'not met'})")
    print(f"path: {compute_path()}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
