"""Snakemake script (checkpoint mlearn_inventory): which mlearn files are available.

The elements with a training file are trained; for the others the log and every table say
clearly that their training data are missing.
"""

import json
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import provenance  # noqa: E402

files = {}
for directory in snakemake.input:  # noqa: F821
    manifest = json.loads((Path(directory) / "manifest.json").read_text())
    manifest.pop("provenance", None)
    manifest["directory"] = str(directory)
    files[f"{manifest['element']}/{manifest['split']}"] = manifest
elements = list(dict.fromkeys(m["element"] for m in files.values()))
trained = [e for e in elements if files[f"{e}/training"]["available"]]
missing = {key: m["reason"] for key, m in files.items() if not m["available"]}
for key, reason in missing.items():
    element = key.split("/")[0]
    consequence = ("no potential can be trained for " + element) if key.endswith("training") \
        else f"{element} cannot be tested"
    print(f"MISSING DATA {key}: {reason}\n  -> {consequence}; the rest of the pipeline runs")
print(f"elements trained: {trained}")
inventory = {
    "files": files,
    "trained": trained,
    "missing": missing,
    "provenance": provenance(snakemake.config, rule=snakemake.rule),  # noqa: F821
}
atomic_write_text(snakemake.output[0], json.dumps(inventory, indent=1) + "\n")  # noqa: F821
