"""Snakemake script: the completeness figure, paper Fig. 1 (rule fig_completeness)."""

import json

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.completeness import (  # noqa: E402
    completeness_differences,
    completeness_summary,
    mirror_pair_differences,
)
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
# the extra panel: B and its mirror image, with the chiral fingerprint (regenerated sets)
chiral = invariants.appended(InvariantSet.load(snakemake.input.chiral))  # noqa: F821
mirror = mirror_pair_differences(int(snakemake.params.n_max), tolerance, invariants=chiral)  # noqa: F821
mirror_summary = {parity: {"count": int(len(rows)), "differ": int(rows["differs"].sum()),
                           "max_abs_difference": float(rows["difference"].abs().max())}
                  for parity, rows in mirror.groupby("parity")}
print(json.dumps({"mirror_pair": mirror_summary}, indent=2))
plot_completeness(table, [snakemake.output.pdf, snakemake.output.png], tolerance,  # noqa: F821
                  mirror_table=mirror)

record = provenance(snakemake.config, rule="fig_completeness", summary=summary,  # noqa: F821
                    mirror_pair=mirror_summary)
write_csv(table, snakemake.output.csv, record,  # noqa: F821
          comments=["Phi_B - Phi_B' for the Pozdnyakov et al. pair (paper Fig. 1); the paper "
                    f"reports non-zero differences for {COMPLETENESS['nu4_differ']} of its "
                    f"{COMPLETENESS['nu4_invariants']} nu = 4 invariants only"])
write_csv(mirror, snakemake.output.mirror_csv, record,  # noqa: F821
          comments=["Phi_B - Phi_B* for B of the Pozdnyakov et al. pair and its mirror image B* "
                    "(reflected through the plane with normal (1, 2, 3)), chiral fingerprint: the "
                    "default (even) invariants, then the parity-odd ones (parity odd), which change "
                    "sign; the paper's fingerprint has only the even ones and cannot tell B from "
                    "B* (section IV A: it cannot distinguish chiral versions of a molecule)"])
