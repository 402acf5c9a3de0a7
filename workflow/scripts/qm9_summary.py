"""Snakemake script (rule qm9_summary): the QM9 decoding rates per mode beside the paper's
(milad.qm9.decoding_summary), with notes on every place this run falls short of the paper
(milad.qm9.summary_notes) and on the RDKit validation (milad.qm9.validation_notes)."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import (  # noqa: E402
    job_provenance,
    provenance_comment_lines,
    read_csv,
    write_csv,
    write_html_table,
)
from milad.qm9 import decoding_summary, summary_notes, validation_notes  # noqa: E402

threshold = float(snakemake.params.threshold)  # noqa: F821
table = read_csv(snakemake.input.decodes)  # noqa: F821
validation = pd.concat([read_csv(p) for p in snakemake.input.validation],  # noqa: F821
                       ignore_index=True)
summary = decoding_summary(table, threshold)
smoke_test = snakemake.config["smoke_test"]  # noqa: F821
notes = summary_notes(table, threshold, smoke_test=smoke_test) + validation_notes(validation)
record = job_provenance(snakemake)  # noqa: F821
print(summary.to_string(index=False))
for line in notes:
    print(line)
title = "QM9 decoding: rates per mode beside the paper's (section IV A)"
write_csv(summary, snakemake.output.csv, record,  # noqa: F821
          comments=[title] + [f"note {i}: {line}" for i, line in enumerate(notes, 1)],
          float_format="%.6g")
write_html_table(summary, snakemake.output.html, record, title=title, notes=notes)  # noqa: F821
header = list(summary.columns)
lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
for row in summary.itertuples(index=False):
    lines.append("| " + " | ".join(
        f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |")
lines += ["", "## Notes", ""] + [f"{i}. {line}" for i, line in enumerate(notes, 1)]
lines += ["", "## Provenance", ""] + [f"- {line}" for line in
                                       provenance_comment_lines(record, prefix="")]
atomic_write_text(snakemake.output.md, "\n".join(lines) + "\n")  # noqa: F821
