"""Snakemake script (rule md_nve): short NVE run with a trained potential through ASE.

Starts from the largest AIMD-NVT structure of the element's training file (any structure if
there is none) with Maxwell-Boltzmann velocities, integrates with velocity Verlet and reports
how well the total energy is conserved (drift per atom per ps).
"""

import json
from pathlib import Path

from milad_job import start_job

start_job(snakemake, torch_threads=True)  # noqa: F821

from milad.data import read_mlearn  # noqa: E402
from milad.io import atomic_write_text  # noqa: E402
from milad.plots import plot_missing_data, plot_nve  # noqa: E402
from milad.potential import load_model, run_nve, unavailable_reason  # noqa: E402
from milad.provenance import provenance, provenance_comment_lines  # noqa: E402

settings = dict(snakemake.params.md)  # noqa: F821
element = settings["element"]
record = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
out = snakemake.output  # noqa: F821

reason = unavailable_reason(snakemake.input.model)  # noqa: F821
if reason is not None:
    result = {"available": False, "element": element, "reason": reason}
    message = f"No NVE run: no trained {element} potential ({reason})."
    plot_missing_data(message, [out.png], figsize=(6, 2), fontsize=8)
    lines = ["# NVE molecular dynamics", "", message]
else:
    potential = load_model(snakemake.input.model)  # noqa: F821
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
    plot_nve(run, element, [out.png])
    n = run["n_atoms"]
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
atomic_write_text(out.json, json.dumps(result, indent=1) + "\n")
lines += ["", "## Provenance", ""] + [f"- {l}" for l in provenance_comment_lines(record, prefix="")]
atomic_write_text(out.md, "\n".join(lines) + "\n")
