"""Neural-network potentials: training cost per element and inference speed (atom-steps/s).

    python benchmarks/potentials.py [--mlearn DIR] [--models results/potentials]
                                    [--elements Li Mo Si Ge] [--threads 2] [--md-steps 50]
                                    [--md-atoms 64 512] [--md-only] [--json out.json]

MD inference with the Si potential (``<models>/Si/model.pt`` when that loads, else an
untrained network of the same size, 32-32, same cost): velocity-Verlet NVE steps on diamond
silicon supercells of ``--md-atoms`` atoms, as atom-steps per second of wall and of CPU time
(fingerprints, network, forces and ASE's integrator together), with the compiled path that
ran. ``--md-only`` stops there.

Per element (mlearn training file shipped with milad, or ``--mlearn DIR/<El>/training.json``):
* fingerprinting the whole training file (values and pair derivatives);
* one full-batch loss + gradient evaluation (what every L-BFGS function evaluation costs) and
  one Adam epoch (batches of 16 structures), with the element's Table II network;
* the full training as the pipeline ran it, read from ``<models>/<El>/model.pt`` when that
  exists (epochs, function evaluations, wall time, stop reason);
* inference through the ASE calculator: velocity-Verlet steps on the largest AIMD structure
  of the training file, as atom-steps per second (fingerprint derivatives included), with
  the trained model if there is one, else an untrained one of the same size (same cost).

Threads (torch, BLAS, numba) are set to ``--threads`` before numpy loads.
"""

from __future__ import annotations

import argparse
import os
import sys

_threads = "2"
for _i, _arg in enumerate(sys.argv):
    if _arg == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
    elif _arg.startswith("--threads="):
        _threads = _arg.split("=", 1)[1]
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = _threads

import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from milad.data import mlearn_embedded_path, read_mlearn  # noqa: E402
from milad.descriptor import Descriptor, compute_path  # noqa: E402
from milad.potential import (  # noqa: E402
    ExtrapolationWarning,
    ModelFileError,
    Potential,
    fingerprint_structures,
    loss_and_metrics,
    run_nve,
    validation_split,
)
from milad.potential.dataset import TensorSet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Table II: cutoff (A), alpha, hidden layers.
TABLE2 = {"Ni": (3.8, 0.04, (32, 32)), "Cu": (3.9, 0.04, (24, 24)), "Li": (4.8, 0.04, (32, 32)),
          "Mo": (5.0, 0.04, (32, 32)), "Si": (4.7, 0.04, (32, 32)), "Ge": (5.1, 0.05, (32, 32))}


def best_of(function, repeats: int) -> float:
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def warm_up() -> None:
    """Compile the numba kernels (descriptor, force contraction) outside the timings."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for seed in range(2):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.rattle(0.05, seed=seed)
        forces = np.random.default_rng(seed).normal(size=(len(atoms), 3))
        atoms.calc = SinglePointCalculator(atoms, energy=-40.0 - seed, forces=forces)
        atoms.info["group"] = "warm-up"
        frames.append(atoms)
    data = fingerprint_structures(frames, Descriptor(n_max=7, cutoff=4.7))
    model = Potential.for_data(data, hidden=(4,))
    model.fit(data, None, max_epochs=1)
    model.fit(data, None, max_epochs=1, optimizer="adam", batch_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        run_nve(atoms, model.calculator(), steps=2)


def training_file(mlearn: Path | None, element: str) -> Path | None:
    """The element's mlearn training file: shipped with milad, or under ``mlearn``."""
    if mlearn is None:
        return mlearn_embedded_path(element, "training")
    return mlearn / element / "training.json"


def silicon_model(models: Path, mlearn: Path | None) -> tuple[Potential, str]:
    """The trained Si potential if one loads, else an untrained one of its size."""
    path = models / "Si" / "model.pt"
    if path.is_file():
        try:
            return Potential.load(path), f"trained, {path}"
        except ModelFileError as error:
            note = f"untrained 32-32 network ({path} does not load: {error})"
    else:
        note = f"untrained 32-32 network (no {path})"
    frames = read_mlearn(training_file(mlearn, "Si"))[:20]
    data = fingerprint_structures(frames, Descriptor(n_max=7, cutoff=TABLE2["Si"][0]))
    return Potential.for_data(data, hidden=TABLE2["Si"][2]), note


def md_rates(model: Potential, sizes: list[int], steps: int) -> list[dict]:
    """NVE atom-steps/s (wall and CPU) on diamond Si supercells of ``sizes`` atoms."""
    from ase.build import bulk

    rows = []
    for n_atoms in sizes:
        repeat = round((n_atoms / 8) ** (1 / 3))
        if 8 * repeat ** 3 != n_atoms:
            raise SystemExit(f"--md-atoms {n_atoms}: diamond Si cubic cells come in 8 n^3 atoms")
        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)
        atoms.rattle(0.05, seed=0)
        n_steps = max(5, steps * 64 // n_atoms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            run_nve(atoms, model.calculator(), steps=2)  # compile, warm caches
            cpu = time.process_time()
            run = run_nve(atoms, model.calculator(), steps=n_steps)
            cpu = time.process_time() - cpu
        rows.append({"atoms": n_atoms, "steps": n_steps,
                     "wall": run["atom_steps_per_second"],
                     "cpu": n_atoms * n_steps / cpu,
                     "drift": run["drift_eV_per_atom_per_ps"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlearn", type=Path, default=None,
                        help="mlearn directory with <El>/training.json (default: the copies "
                             "shipped with milad)")
    parser.add_argument("--models", type=Path, default=ROOT / "results" / "potentials")
    parser.add_argument("--elements", nargs="+", default=["Li", "Mo", "Si", "Ge"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--md-steps", type=int, default=50)
    parser.add_argument("--md-atoms", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--md-only", action="store_true",
                        help="only the MD inference of the Si potential")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()

    model, note = silicon_model(args.models, args.mlearn)
    md = md_rates(model, args.md_atoms, args.md_steps)
    print(f"MD inference, Si potential ({note}), {args.threads} thread(s):\n")
    print("| atoms | steps | atom-steps/s (wall) | atom-steps/s (CPU time) | drift (eV/atom/ps) |")
    print("|---:|---:|---:|---:|---:|")
    for r in md:
        print(f"| {r['atoms']} | {r['steps']} | {r['wall']:,.0f} | {r['cpu']:,.0f} | "
              f"{r['drift']:.2g} |")
    print(f"\npath: {compute_path()}\n", flush=True)
    if args.md_only:
        if args.json:
            args.json.write_text(json.dumps({"threads": args.threads, "md": md}, indent=1))
        return

    rows = []
    for element in args.elements:
        path = training_file(args.mlearn, element)
        if path is None or not path.is_file():
            print(f"{element}: no training file at {path}, skipped")
            continue
        cutoff, alpha, hidden = TABLE2[element]
        frames = read_mlearn(path)
        descriptor = Descriptor(n_max=7, cutoff=cutoff)
        start = time.perf_counter()
        data = fingerprint_structures(frames, descriptor)
        fingerprint_seconds = time.perf_counter() - start
        fit_index, _ = validation_split(data.groups, 0.1, 0)
        fit = data.subset(fit_index)
        model = Potential.for_data(fit, hidden=hidden)
        tensors = TensorSet(fit)

        def evaluation():
            model.zero_grad()
            loss, _ = loss_and_metrics(model, tensors, alpha)
            loss.backward()

        evaluation_seconds = best_of(evaluation, args.repeats)
        adam = Potential.for_data(fit, hidden=hidden)
        start = time.perf_counter()
        adam.fit(fit, None, optimizer="adam", max_epochs=1, batch_size=16, alpha=alpha)
        adam_epoch_seconds = time.perf_counter() - start

        trained_path = args.models / element / "model.pt"
        trained = Potential.load(trained_path) if trained_path.is_file() else None
        training = trained.metadata.get("training", {}) if trained else {}
        md_model = trained or model
        aimd = [a for a in frames if a.info.get("group") == "AIMD-NVT"] or frames
        start_structure = max(aimd, key=len)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            run = run_nve(start_structure, md_model.calculator(), steps=args.md_steps)
        rows.append({
            "element": element,
            "structures": len(data),
            "atoms": int(len(data.values)),
            "pairs": int(len(data.centers)),
            "fingerprint_s": fingerprint_seconds,
            "evaluation_s": evaluation_seconds,
            "adam_epoch_s": adam_epoch_seconds,
            "trained": trained is not None,
            "training_optimizer": training.get("optimizer"),
            "training_epochs": training.get("epochs"),
            "training_evaluations": trained.history.get("evaluations", [None])[-1] if trained
            else None,
            "training_minutes": (trained.metadata.get("wall_seconds", 0) / 60) if trained else None,
            "training_threads": trained.metadata.get("threads") if trained else None,
            "restarts": len(trained.metadata.get("restarts", [])) or 1 if trained else None,
            "stop_reason": training.get("stop_reason"),
            "md_atoms": run["n_atoms"],
            "atom_steps_per_s": run["atom_steps_per_second"],
        })
        print(rows[-1], flush=True)

    print(f"\n{args.threads} thread(s), torch {torch.__version__}, numpy {np.__version__}\n")
    print("| element | structures / atoms / pairs | fingerprints (s) | loss+grad, full batch (s) "
          "| Adam epoch (s) | pipeline training (wall) | MD atom-steps/s |")
    print("|---|---|---:|---:|---:|---|---:|")
    for r in rows:
        training = (f"{r['training_minutes']:.1f} min on {r['training_threads']} thread(s) for "
                    f"{r['restarts']} restart(s); kept one: {r['training_optimizer']}, "
                    f"{r['training_epochs']} epochs, {r['training_evaluations']} evaluations"
                    if r["trained"] else "not trained yet")
        print(f"| {r['element']} | {r['structures']} / {r['atoms']} / {r['pairs']} | "
              f"{r['fingerprint_s']:.1f} | {r['evaluation_s']:.3f} | {r['adam_epoch_s']:.2f} | "
              f"{training} | {r['atom_steps_per_s']:.0f} ({r['md_atoms']} atoms) |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "md": md, "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
