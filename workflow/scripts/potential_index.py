"""Snakemake script (rule parity_plots): index of the potential figures, with missing elements."""

import json
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import provenance, provenance_comment_lines  # noqa: E402

inventory = json.loads(Path(snakemake.input.inventory).read_text())  # noqa: F821
figures = {Path(p).name for p in snakemake.input.figures}  # noqa: F821
lines = ["# Potentials: parity plots and learning curves", ""]
for element in snakemake.params.elements:  # noqa: F821
    entry = inventory["files"][f"{element}/training"]
    if not entry["available"]:
        lines.append(f"- {element}: TRAINING DATA MISSING, no potential; its figures only say "
                     f"so ({entry['reason']})")
        continue
    names = [f"{kind}_{element}.{ext}" for kind in ("parity", "learning_curve")
             for ext in ("png", "pdf")]
    lines.append(f"- {element}: " + ", ".join(f"[{n}]({n})" for n in names if n in figures))
record = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
lines += ["", "## Provenance", ""] + [f"- {l}" for l in provenance_comment_lines(record, prefix="")]
atomic_write_text(snakemake.output[0], "\n".join(lines) + "\n")  # noqa: F821
print("\n".join(lines))
