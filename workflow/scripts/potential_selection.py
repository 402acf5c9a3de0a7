"""Snakemake script (checkpoint potential_choice, rule potential_selection): the
cross-validation results of every configuration, the score relative to the baseline and the
chosen configuration, as one element's choice (JSON) or as the selection table (CSV, Markdown)."""

import json
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.io import atomic_write_text  # noqa: E402
from milad.potential.selection import choose, selection_markdown, selection_table  # noqa: E402
from milad.provenance import provenance, with_provenance, write_csv  # noqa: E402

params = snakemake.params  # noqa: F821
records = [json.loads(Path(path).read_text()) for path in snakemake.input]  # noqa: F821
table = selection_table(records, baseline=params.baseline, order=params.configurations)
record = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
print(table.to_string())
if snakemake.rule == "potential_choice":  # noqa: F821
    choice = with_provenance({"chosen": choose(table), "baseline": params.baseline}, record)
    atomic_write_text(snakemake.output[0], json.dumps(choice, indent=1) + "\n")  # noqa: F821
else:
    write_csv(table, snakemake.output.csv, record,  # noqa: F821
              comments=["Model selection: k-fold cross-validation over each element's training "
                        f"file ({params.mode} mode); RMSEs pooled over the held-out folds, "
                        "energies meV/atom, forces eV/A; score = CV energy / baseline's + CV "
                        "force / baseline's"])
    atomic_write_text(snakemake.output.md,  # noqa: F821
                      selection_markdown(table, baseline=params.baseline, record=record))
