"""Snakemake script (rule ablation): what each lever does to the cross-validation RMSEs."""

import json
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.io import atomic_write_text  # noqa: E402
from milad.plots import plot_ablation, plot_missing_data  # noqa: E402
from milad.potential.selection import ablation_markdown, ablation_table, selection_table  # noqa: E402
from milad.provenance import provenance, write_csv  # noqa: E402

params = snakemake.params  # noqa: F821
out = snakemake.output  # noqa: F821
records = [json.loads(Path(path).read_text()) for path in snakemake.input]  # noqa: F821
table = selection_table(records, baseline=params.baseline, order=params.configurations)
ablation = ablation_table(table, params.levers)
record = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
print(ablation.to_string())
write_csv(ablation, out.csv, record,
          comments=["Ablation: cross-validation RMSEs over the training files without and with "
                    "each lever; ratio = with / without (below 1: the lever helps)"])
atomic_write_text(out.md, ablation_markdown(ablation, record=record))
if len(ablation):
    plot_ablation(ablation, [out.png, out.pdf])
else:  # no element had training data (or no lever both of its configurations): say so
    unavailable = table.loc[~table["available"].astype(bool), ["element", "reason"]].drop_duplicates()
    reasons = "; ".join(f"{e}: {r}" for e, r in unavailable.itertuples(index=False))
    plot_missing_data(f"Ablation: nothing to compare. {reasons or 'No lever has both of its configurations.'}",
                      [out.png, out.pdf])
