"""Snakemake script (rule potential_figures): parity plots and learning curve of one element."""

import json
import sys
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

import numpy as np  # noqa: E402

from milad.plots import plot_learning_curve, plot_missing_data, plot_parity  # noqa: E402
from milad.provenance import read_csv  # noqa: E402

summary = json.loads(Path(snakemake.input.metrics).read_text())  # noqa: F821
out = snakemake.output  # noqa: F821
if not summary["available"]:
    message = f"{summary['element']}: TRAINING DATA MISSING, no potential\n{summary['reason']}"
    plot_missing_data(message, [out.parity_png, out.parity_pdf, out.curve_png, out.curve_pdf])
    print(message)
    sys.exit(0)
plot_parity(summary, np.load(snakemake.input.predictions),  # noqa: F821
            [out.parity_png, out.parity_pdf])
plot_learning_curve(summary, read_csv(snakemake.input.history),  # noqa: F821
                    [out.curve_png, out.curve_pdf])
print("written", list(out))
