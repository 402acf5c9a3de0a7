"""Snakemake script: the completeness figure, paper Fig. 1 (rule fig_completeness)."""

import json

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.completeness import completeness_differences, completeness_summary  # noqa: E402
from milad.invariants import InvariantSet  # noqa: E402
from milad.paper import COMPLETENESS  # noqa: E402
from milad.plots import plot_completeness  # noqa: E402
from milad.provenance import provenance, write_csv  # noqa: E402

tolerance = float(snakemake.params.tolerance)  # noqa: F821
invariants = InvariantSet.load(snakemake.input.invariants)  # noqa: F821
table = completeness_differences(
    n_max=int(snakemake.params.n_max), tolerance=tolerance, invariants=invariants  # noqa: F821
)
summary = completeness_summary(table)
print(json.dumps(summary, indent=2))
plot_completeness(table, [snakemake.output.pdf, snakemake.output.png], tolerance)  # noqa: F821

record = provenance(snakemake.config, rule="fig_completeness", summary=summary)  # noqa: F821
write_csv(table, snakemake.output.csv, record,  # noqa: F821
          comments=["Phi_B - Phi_B' for the Pozdnyakov et al. pair (paper Fig. 1); the paper "
                    f"reports non-zero differences for {COMPLETENESS['nu4_differ']} of its "
                    f"{COMPLETENESS['nu4_invariants']} nu = 4 invariants only"])
