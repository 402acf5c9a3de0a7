"""Snakemake script (rules potential_evaluate, potential_evaluate_tuned): RMSEs and
predictions of one potential (a single network per element or an ensemble).

Subsets: ``fit`` (training structures the weights were fitted to), ``validation`` (held out
from the training file for early stopping), ``training`` (the whole training file) and
``test`` (the mlearn test file, used here only, after training).
"""

import json
import sys

from milad_job import start_job

start_job(snakemake, torch_threads=True)  # noqa: F821

import numpy as np  # noqa: E402
from milad.io import atomic_output, atomic_write_text  # noqa: E402
from milad.potential import FingerprintSet, load_model, set_metrics, unavailable_reason  # noqa: E402
from milad.provenance import provenance  # noqa: E402

element = snakemake.wildcards.element  # noqa: F821
record = provenance(snakemake.config, rule=snakemake.rule, element=element)  # noqa: F821
reason = unavailable_reason(snakemake.input.model)  # noqa: F821
if reason is not None:
    print(f"NO POTENTIAL for {element}: {reason}")
    atomic_write_text(snakemake.output.metrics, json.dumps(  # noqa: F821
        {"element": element, "available": False, "reason": reason, "provenance": record},
        indent=1) + "\n")
    with atomic_output(snakemake.output.predictions) as handle:  # noqa: F821
        np.savez(handle, unavailable=np.array(reason))
    sys.exit(0)
potential = load_model(snakemake.input.model)  # noqa: F821
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
    metrics[name], predicted = set_metrics(potential, data, return_predictions=True)
    print(name, metrics[name])
    arrays.update({
        f"{name}_energy_reference": data.energy / data.n_atoms,
        f"{name}_energy_predicted": predicted["energy"] / data.n_atoms,
        f"{name}_n_atoms": data.n_atoms,
        f"{name}_groups": data.groups.astype(str),
        f"{name}_forces_reference": data.forces,
        f"{name}_forces_predicted": predicted["forces"],
    })
    if "energy_std" in predicted:
        arrays[f"{name}_energy_std"] = predicted["energy_std"] / data.n_atoms
descriptor = potential.descriptor
parts = getattr(descriptor, "descriptors", [descriptor])
summary = {
    "element": element,
    "available": True,
    "test_unavailable_reason": test_reason,
    "metrics": metrics,
    "settings": {
        "cutoff": descriptor.cutoff,
        "cutoffs": [d.cutoff for d in parts],
        "n_max": max(d.n_max for d in parts),
        "n_invariants": len(descriptor),
        "descriptor": potential.descriptor_config,
        "alpha": potential.metadata.get("alpha"),
        "hidden": potential.metadata.get("hidden"),
        "configuration": potential.metadata.get("configuration"),
        "n_weights": potential.n_parameters(),
    },
    # a single network's own training record; an ensemble's per member (in member order)
    "training": potential.metadata.get("training") or {
        "members": [m.metadata.get("training", {}) for m in getattr(potential, "members", [])]},
    "restarts": potential.metadata.get("restarts") or [
        {"member": i, **r} for i, m in enumerate(getattr(potential, "members", []))
        for r in m.metadata.get("restarts", [])],
    "training_wall_seconds": potential.metadata.get("wall_seconds"),
    "provenance": record,
}
atomic_write_text(snakemake.output.metrics, json.dumps(summary, indent=1) + "\n")  # noqa: F821
with atomic_output(snakemake.output.predictions) as handle:  # noqa: F821
    np.savez_compressed(handle, **arrays)
