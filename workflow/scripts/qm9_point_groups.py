"""Snakemake script (rule qm9_point_groups): the point group of every molecule decoded
(milad.qm9.point_group_table, paper Fig. 7)."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.data import read_qm9_subset  # noqa: E402
from milad.provenance import job_provenance, write_csv  # noqa: E402
from milad.qm9 import point_group_table, select_molecules  # noqa: E402

tolerance = float(snakemake.params.tolerance)  # noqa: F821
subset = read_qm9_subset(snakemake.input[0])  # noqa: F821
molecules = select_molecules(subset, snakemake.params.molecules)  # noqa: F821
table = point_group_table(molecules, tolerance=tolerance)
print(table.to_string(index=False))
print(table["point_group"].value_counts().to_string())
write_csv(table, snakemake.output[0], job_provenance(snakemake),  # noqa: F821
          comments=[f"point groups (milad.compare.point_group, tolerance {tolerance}) of the "
                    "QM9 molecules decoded; paper Fig. 7 breaks the decoding down by them"])
