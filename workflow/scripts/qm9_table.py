"""Snakemake script (rule qm9_decodes): the tidy table of every decode, one row per
molecule x mode x attempt (milad.qm9.decodes_table); Parquet too where pyarrow is installed."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821


from milad.io import atomic_output  # noqa: E402
from milad.provenance import job_provenance, read_csv, write_csv  # noqa: E402
from milad.qm9 import decodes_table, read_records, summary_notes  # noqa: E402

records = read_records(snakemake.input.records)  # noqa: F821
point_groups = read_csv(snakemake.input.point_groups)  # noqa: F821
table = decodes_table(records, point_groups)
threshold = float(snakemake.params.threshold)  # noqa: F821
record = job_provenance(
    snakemake,  # noqa: F821
    inputs=[f"{len(records)} decode records results/qm9/decodes/<mode>/<qm9_id>_<attempt>.json",
            snakemake.input.point_groups],  # noqa: F821
)
notes = summary_notes(table, threshold, smoke_test=snakemake.config["smoke_test"])  # noqa: F821
for line in notes:
    print(line)
write_csv(
    table, snakemake.output.csv, record,  # noqa: F821
    comments=[
        "QM9 decoding (paper section IV A): one row per molecule x mode x attempt",
        "mode positions: positions only; single: positions and species from one fingerprint; "
        "two: species from a second fingerprint given the positions decoded in mode positions",
        "success: the decode's (fingerprint RMSD, and in mode two also the positions "
        f"fingerprint RMSD, below {threshold:g}); positions_rmsd: mode two only",
        "structure_rmsd = min(rmsd, mirror_rmsd): Angstrom, after the best rotation and atom "
        "assignment (milad.compare.compare, RDKit), to the original (rmsd) and to the decode's "
        "mirror image (mirror_rmsd); matched: the lower; atoms matched within a species when "
        "the composition is right",
        "species_correct: the decoded composition equals the original's (empty in mode "
        "positions); wall_s: seconds of the decode alone",
    ],
)
if snakemake.output.get("parquet"):  # noqa: F821
    with atomic_output(snakemake.output.parquet) as handle:  # noqa: F821
        table.to_parquet(handle, index=False)
print(f"{len(table)} rows written")
