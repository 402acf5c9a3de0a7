"""Snakemake script (rule potential_train): fit one element's potential.

A validation split is carved out of the training file (stratified by group); early stopping
watches it. The test file is not an input of this rule: it never influences training.
"""

import sys
import time

from milad_job import start_job

start_job(snakemake, torch_threads=True)  # noqa: F821

import pandas as pd  # noqa: E402
from milad.potential import (  # noqa: E402
    FingerprintSet,
    mark_unavailable,
    train_best_of,
    unavailable_reason,
    validation_split,
)
from milad.provenance import provenance, provenance_comment_lines  # noqa: E402

COLUMNS = ["epoch", "seconds", "evaluations", "learning_rate", "train_loss", "train_energy_rmse",
           "train_force_rmse", "validation_loss", "validation_energy_rmse",
           "validation_force_rmse"]

element = snakemake.wildcards.element  # noqa: F821
settings = dict(snakemake.params.training)  # noqa: F821
alpha = float(snakemake.params.alpha)  # noqa: F821
hidden = [int(h) for h in snakemake.params.hidden]  # noqa: F821

record = provenance(snakemake.config, rule=snakemake.rule, element=element)  # noqa: F821
reason = unavailable_reason(snakemake.input[0])  # noqa: F821
if reason is not None:
    print(f"NO TRAINING for {element}: {reason}")
    mark_unavailable(snakemake.output.model, reason)  # noqa: F821
    with open(snakemake.output.history, "w") as handle:  # noqa: F821
        handle.write(f"# no learning curve: {element} was not trained ({reason})\n")
        handle.write("\n".join(provenance_comment_lines(record)) + "\n")
        handle.write(",".join(COLUMNS) + "\n")
    sys.exit(0)
data = FingerprintSet.load(snakemake.input[0])  # noqa: F821
fit_index, validation_index = validation_split(
    data.groups, float(settings["validation_fraction"]), int(settings["seed"])
)
fit, validation = data.split(fit_index, validation_index)
print(f"{element}: {len(data)} training structures -> {len(fit)} fitted, "
      f"{len(validation)} validation (test set not used)")
start = time.perf_counter()
potential = train_best_of(
    fit, validation,
    restarts=int(settings["restarts"]),
    hidden=hidden,
    bias=bool(settings["bias"]),
    seed=int(settings["seed"]),
    alpha=alpha,
    optimizer=settings["optimizer"],
    energy_term=settings["energy_term"],
    weight_decay=float(settings["weight_decay"]),
    max_epochs=int(settings["max_epochs"]),
    patience=int(settings["patience"]),
    learning_rate=settings["learning_rate"],
    batch_size=int(settings["batch_size"]),
    lbfgs_iterations=int(settings["lbfgs_iterations"]),
    max_seconds=60 * float(settings["max_minutes"]),
    log=print,
)
history = potential.history
print(f"{potential.n_parameters()} weights, hidden layers {hidden}, alpha {alpha}, {settings}")
potential.metadata.update(
    element=element,
    alpha=alpha,
    hidden=hidden,
    settings=settings,
    threads=int(snakemake.threads),  # noqa: F821
    wall_seconds=time.perf_counter() - start,
    data={"sha256": data.metadata.get("sha256"), "source": data.metadata.get("source"),
          "n_structures": len(data), "n_structures_in_file":
          data.metadata.get("n_structures_in_file")},
    fit_indices=fit_index.tolist(),
    validation_indices=validation_index.tolist(),
    provenance=record,
)
potential.save(snakemake.output.model)  # noqa: F821
curve = pd.DataFrame({k: history[k] for k in COLUMNS})
with open(snakemake.output.history, "w") as handle:  # noqa: F821
    handle.write(f"# learning curve of the {element} potential; best epoch "
                 f"{history['best_epoch'][0]} ({history['stop_reason'][0]})\n")
    handle.write(f"# losses: eq. 38 (energy term {settings['energy_term']}); RMSEs: energy "
                 "eV/atom, forces eV/A\n")
    handle.write("\n".join(provenance_comment_lines(record)) + "\n")
    curve.to_csv(handle, index=False, float_format="%.10g")
