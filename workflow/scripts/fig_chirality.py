"""Snakemake script (rule fig_chirality): which enantiomer the decodes returned
(milad.plots.plot_chirality)."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.plots import plot_chirality  # noqa: E402
from milad.provenance import read_csv  # noqa: E402

table = read_csv(snakemake.input[0])  # noqa: F821
plot_chirality(table, [snakemake.output.pdf, snakemake.output.png],  # noqa: F821
               float(snakemake.params.structure_tolerance),  # noqa: F821
               title="Enantiomers of the QM9 subset decoded from the chiral fingerprint"
                     + (" and the default one" if (table["fingerprint"] == "default").any() else ""))
