# MILAD reproduction pipeline: `snakemake --cores N` builds every table and figure.
#
# Named targets (rerun one with `snakemake --cores 2 NAME`, add `--forcerun NAME` to redo it):
#   invariants        regenerate the shipped invariant sets and compare them with the shipped ones
#   table1            results/tables/table1.{csv,md,html}      (paper Table I)
#   fig_completeness  results/figures/fig_completeness.{pdf,png} (paper Fig. 1, section II E)
#   table2, table3, si_table1, parity_plots, md_nve   neural-network potentials on the mlearn
#                     data (paper section IV B): results/tables/, results/figures/potentials/
#   potential_selection, ablation   cross-validated model selection for the tuned potentials
#                     (results/tables/potential_selection.*, ablation.*)
#   fig2, fig3        results/figures/fig{2,3}.{pdf,png}: reconstructions of urea by order and
#                     peak finding (paper section III, Figs. 2 and 3)
#   fig5, fig6, fig7, si_fig1, si_fig2   the QM9 decoding experiment (paper section IV A and
#                     supplementary material): results/figures/*.{pdf,png}
#   qm9_summary       results/tables/qm9_summary.{csv,md,html}: decoding rates beside the
#                     paper's; runs the whole QM9 experiment, figures included (every decode
#                     is its own job: results/qm9/decodes/, table results/qm9/decodes.csv)
#   chirality         results/tables/chirality.{csv,md}, results/figures/chirality.{pdf,png}:
#                     the chiral molecules of the QM9 subset decoded from the chiral fingerprint
#                     (parity-odd invariants appended) and the default one: which enantiomer
#                     each decode returns (beyond the paper)
#
# Configuration: config.yaml (documented key by key), validated against
# workflow/schemas/config.schema.yaml; override with --configfile or --config KEY=VALUE.

import os

from snakemake.utils import min_version, validate

min_version("8.0")


# the repository's config.yaml, also when the pipeline runs in another --directory
configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, schema="workflow/schemas/config.schema.yaml")


# `snakemake --report results/report.html`: every figure and table, captioned with the
# paper's value for the same quantity (captions in workflow/report/)
report: "workflow/report/workflow.rst"


wildcard_constraints:
    n_max=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/invariants.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/potentials.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/qm9.smk"
include: "workflow/rules/chirality.smk"


rule all:
    default_target: True
    localrule: True
    input:
        rules.invariants.input,
        rules.table1.output,
        rules.fig_completeness.output,
        rules.table2.output,
        rules.table3.output,
        rules.si_table1.output,
        rules.parity_plots.output,
        rules.md_nve.output,
        rules.ablation.output,
        rules.qm9_summary.input,
        rules.chirality.input,


# the run ends with a summary on the terminal: missing data (the run still succeeds) and
# whether it was a smoke test
onsuccess:
    print("\n".join(run_summary()))


onerror:
    print("\n".join(run_summary()))
