"""Snakemake script (rule md_nve): short NVE run with a trained potential through ASE.

Starts from the largest AIMD-NVT structure of the element's training file (any structure if
there is none) with Maxwell-Boltzmann velocities, integrates with velocity Verlet and reports
how well the total energy is conserved (drift per atom per ps).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from milad.data import read_mlearn  # noqa: E402
from milad.potential import Potential, run_nve, unavailable_reason  # noqa: E402
from milad.provenance import provenance, provenance_comment_lines  # noqa: E402

torch.set_num_threads(int(snakemake.threads))  # noqa: F821
settings = dict(snakemake.params.md)  # noqa: F821
element = settings["element"]
record = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
out = snakemake.output  # noqa: F821

reason = unavailable_reason(snakemake.input.model)  # noqa: F821
if reason is not None:
    result = {"available": False, "element": element, "reason": reason}
    message = f"No NVE run: no trained {element} potential ({reason})."
    figure, axis = plt.subplots(figsize=(6, 2))
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=8)
    axis.axis("off")
    figure.savefig(out.png, dpi=100)
    lines = ["# NVE molecular dynamics", "", message]
else:
    potential = Potential.load(snakemake.input.model)  # noqa: F821
    data_dir = Path(snakemake.input.data)  # noqa: F821
    frames = read_mlearn(data_dir / "training.json")
    aimd = [a for a in frames if a.info.get("group") == "AIMD-NVT"] or frames
    start = max(aimd, key=len)
    print(f"start: {start.get_chemical_formula()} ({start.info.get('group')}, "
          f"{start.info.get('description', '')}), {len(start)} atoms")
    calculator = potential.calculator()
    run = run_nve(start, calculator, steps=int(settings["steps"]),
                  timestep_fs=float(settings["timestep_fs"]),
                  temperature_K=float(settings["temperature_K"]), seed=int(settings["seed"]))
    calculator_note = "ASE VelocityVerlet with milad.potential.MiladCalculator"
    result = {"available": True, "element": element, "integrator": calculator_note,
              "start_structure": {"formula": start.get_chemical_formula(),
                                  "group": start.info.get("group"),
                                  "description": start.info.get("description")},
              "extrapolating_steps": calculator.n_extrapolations, **run}
    summary = {k: v for k, v in result.items() if not isinstance(v, list)}
    print(json.dumps(summary, indent=1))
    figure, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    n = run["n_atoms"]
    e0 = run["total"][0]
    axes[0].plot(run["time_ps"], [(e - e0) / n * 1000 for e in run["total"]], label="total")
    axes[0].plot(run["time_ps"], [(e - e0) / n * 1000 for e in run["potential"]], label="potential",
                 alpha=0.6)
    axes[0].set_ylabel("E - E_tot(0) (meV/atom)")
    axes[0].legend(fontsize=8)
    axes[1].plot(run["time_ps"], run["temperature"])
    axes[1].set_ylabel("T (K)")
    axes[1].set_xlabel("time (ps)")
    axes[0].set_title(
        f"{element} NVE, {n} atoms, dt = {run['timestep_fs']} fs: drift "
        f"{1000 * run['drift_eV_per_atom_per_ps']:.3f} meV/atom/ps", fontsize=10)
    figure.tight_layout()
    figure.savefig(out.png, dpi=150)
    lines = [
        "# NVE molecular dynamics with the trained potential", "",
        f"- element: {element}; start: {start.get_chemical_formula()} "
        f"({start.info.get('group')}), {n} atoms, velocities from Maxwell-Boltzmann at "
        f"{run['temperature_K']} K (seed {settings['seed']})",
        f"- {run['steps']} velocity-Verlet steps of {run['timestep_fs']} fs "
        f"({run['steps'] * run['timestep_fs'] / 1000:.3f} ps), {calculator_note}",
        f"- total-energy drift (slope of a linear fit): "
        f"{1000 * run['drift_eV_per_atom_per_ps']:.4f} meV/atom/ps",
        f"- largest |E_tot(t) - E_tot(0)|: {1000 * run['max_deviation_eV_per_atom']:.4f} meV/atom; "
        f"standard deviation {1000 * run['std_eV_per_atom']:.4f} meV/atom",
        f"- speed: {run['atom_steps_per_second']:.0f} atom-steps/s "
        f"({run['seconds']:.1f} s, {int(snakemake.threads)} thread(s))",  # noqa: F821
        f"- extrapolating steps (fingerprints outside the training range): "
        f"{calculator.n_extrapolations} of {run['steps'] + 1} evaluations",
    ]
result["provenance"] = record
Path(out.json).write_text(json.dumps(result, indent=1) + "\n")
lines += ["", "## Provenance", ""] + [f"- {l}" for l in provenance_comment_lines(record, prefix="")]
Path(out.md).write_text("\n".join(lines) + "\n")
