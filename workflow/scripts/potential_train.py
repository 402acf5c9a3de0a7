"""Snakemake script (rules potential_train, potential_train_tuned): fit one element's potential.

``params.settings`` holds the model and training settings (the paper's, or those of the
configuration chosen by cross-validation, with its descriptor variant); training goes through
milad.potential.train_model, which carves a validation split out of the training file
(stratified by group) for early stopping. The test file is not an input of these rules: it
never influences training.
"""

import sys
import time

from milad_job import start_job

start_job(snakemake, torch_threads=True)  # noqa: F821

import pandas as pd  # noqa: E402

from milad.potential import FingerprintSet, mark_unavailable, train_model, unavailable_reason  # noqa: E402
from milad.provenance import provenance, write_csv  # noqa: E402

COLUMNS = ["epoch", "seconds", "evaluations", "learning_rate", "train_loss", "train_energy_rmse",
           "train_force_rmse", "validation_loss", "validation_energy_rmse",
           "validation_force_rmse"]

element = snakemake.wildcards.element  # noqa: F821
settings = dict(snakemake.params.settings)  # noqa: F821
out = snakemake.output  # noqa: F821
record = provenance(snakemake.config, rule=snakemake.rule, element=element)  # noqa: F821
data_path = snakemake.input.data if hasattr(snakemake.input, "data") else snakemake.input[0]  # noqa: F821
reason = unavailable_reason(data_path)
if reason is not None:
    print(f"NO TRAINING for {element}: {reason}")
    mark_unavailable(out.model, reason)
    write_csv(pd.DataFrame(columns=COLUMNS), out.history, record,
              comments=[f"no learning curve: {element} was not trained ({reason})"])
    sys.exit(0)
data = FingerprintSet.load(data_path)
print(f"{element}: {len(data)} training structures, {data.n_features} invariants; "
      f"configuration {settings.get('configuration', 'paper settings')}: model "
      f"{settings['model']}, training {settings['training']} (test set not used)")
start = time.perf_counter()
model = train_model(data, settings["model"], settings["training"], log=print)
model.metadata.update(
    element=element,
    alpha=settings["training"]["alpha"],
    hidden=list(settings["model"]["hidden"]),
    configuration=settings.get("configuration"),
    variant=settings.get("variant", "paper"),
    settings=settings["training"],
    threads=int(snakemake.threads),  # noqa: F821
    wall_seconds=time.perf_counter() - start,
    data={"sha256": data.metadata.get("sha256"), "source": data.metadata.get("source"),
          "n_structures": len(data), "n_structures_in_file":
          data.metadata.get("n_structures_in_file")},
    provenance=record,
)
print(f"{model.n_parameters()} weights, trained in {time.perf_counter() - start:.0f} s")
model.save(out.model)
history = model.history
curve = pd.DataFrame({k: history[k] for k in COLUMNS})
write_csv(curve, out.history, record, float_format="%.10g", comments=[
    f"learning curve of the {element} potential; best epoch {history['best_epoch'][0]} "
    f"({history['stop_reason'][0]})",
    f"losses: eq. 38 (energy term {settings['training']['energy_term']}); RMSEs: energy "
    "eV/atom, forces eV/A",
])
