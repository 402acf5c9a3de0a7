"""Snakemake script (rule potential_evaluate): RMSEs and predictions of one potential.

Subsets: ``fit`` (training structures the weights were fitted to), ``validation`` (held out
from the training file for early stopping), ``training`` (the whole training file) and
``test`` (the mlearn test file, used here only, after training).
"""

import json
import sys
from pathlib import Path

from milad_job import start_job

start_job(snakemake, torch_threads=True)  # noqa: F821

import numpy as np  # noqa: E402
from milad.potential import FingerprintSet, Potential, unavailable_reason  # noqa: E402
from milad.provenance import provenance  # noqa: E402

element = snakemake.wildcards.element  # noqa: F821
record = provenance(snakemake.config, rule=snakemake.rule, element=element)  # noqa: F821
reason = unavailable_reason(snakemake.input.model)  # noqa: F821
if reason is not None:
    print(f"NO POTENTIAL for {element}: {reason}")
    Path(snakemake.output.metrics).write_text(json.dumps(  # noqa: F821
        {"element": element, "available": False, "reason": reason, "provenance": record},
        indent=1) + "\n")
    np.savez(snakemake.output.predictions, unavailable=np.array(reason))  # noqa: F821
    sys.exit(0)
potential = Potential.load(snakemake.input.model)  # noqa: F821
training = FingerprintSet.load(snakemake.input.training)  # noqa: F821
subsets = {
    "fit": training.subset(potential.metadata["fit_indices"]),
    "validation": training.subset(potential.metadata["validation_indices"]),
    "training": training,
}
test_reason = unavailable_reason(snakemake.input.test)  # noqa: F821
if test_reason is None:
    subsets["test"] = FingerprintSet.load(snakemake.input.test)  # noqa: F821
else:
    print(f"no test set for {element}: {test_reason}")
metrics, arrays = {}, {}
for name, data in subsets.items():
    if len(data) == 0:
        continue
    predicted = potential.predict_set(data)
    per_atom_error = (predicted["energy"] - data.energy) / data.n_atoms
    force_error = predicted["forces"] - data.forces
    excess = potential.extrapolation(data.values, data.species, data.elements)
    metrics[name] = {
        "n_structures": len(data),
        "n_atoms": int(len(data.values)),
        "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean(per_atom_error**2))),
        "energy_mae_meV_per_atom": 1000 * float(np.mean(np.abs(per_atom_error))),
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(force_error**2))),
        "force_mae_eV_per_A": float(np.mean(np.abs(force_error))),
        "atoms_extrapolating": int((excess > 0).sum()),
        "structures_extrapolating": int(len(np.unique(data.structure[excess > 0]))),
    }
    print(name, metrics[name])
    arrays.update({
        f"{name}_energy_reference": data.energy / data.n_atoms,
        f"{name}_energy_predicted": predicted["energy"] / data.n_atoms,
        f"{name}_n_atoms": data.n_atoms,
        f"{name}_groups": data.groups.astype(str),
        f"{name}_forces_reference": data.forces,
        f"{name}_forces_predicted": predicted["forces"],
    })
summary = {
    "element": element,
    "available": True,
    "test_unavailable_reason": test_reason,
    "metrics": metrics,
    "settings": {
        "cutoff": potential.descriptor_config["cutoff"],
        "n_max": potential.descriptor_config["n_max"],
        "n_invariants": potential.descriptor_config["n_invariants"],
        "alpha": potential.metadata.get("alpha"),
        "hidden": list(potential.hidden),
        "bias": potential.bias,
        "n_weights": potential.n_parameters(),
    },
    "training": potential.metadata.get("training", {}),
    "restarts": potential.metadata.get("restarts", []),
    "training_wall_seconds": potential.metadata.get("wall_seconds"),
    "provenance": record,
}
Path(snakemake.output.metrics).write_text(json.dumps(summary, indent=1) + "\n")  # noqa: F821
np.savez_compressed(snakemake.output.predictions, **arrays)  # noqa: F821
