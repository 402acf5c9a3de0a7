"""Snakemake script (rule chirality_table): every decode of the chiral molecules with the hand
it returned (milad.chirality.chirality_table), the notes and whether the criterion holds."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.chirality import (  # noqa: E402
    chirality_markdown,
    chirality_notes,
    chirality_table,
)
from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import (  # noqa: E402
    job_provenance,
    provenance_comment_lines,
    read_csv,
    write_csv,
)
from milad.qm9 import read_records  # noqa: E402

params = snakemake.params  # noqa: F821
molecules = read_csv(snakemake.input.molecules)  # noqa: F821
table = chirality_table(read_records(snakemake.input.records))  # noqa: F821
notes = chirality_notes(molecules, table, float(params.threshold),
                        float(params.structure_tolerance),
                        smoke_test=snakemake.config["smoke_test"])  # noqa: F821
for line in notes:
    print(line)
record = job_provenance(
    snakemake,  # noqa: F821
    inputs=[snakemake.input.molecules,  # noqa: F821
            f"{len(table)} decode records results/chirality/decodes/<fingerprint>/<qm9_id>_<attempt>.json"],
)
title = "Enantiomers: decodes of the chiral QM9 molecules from the chiral fingerprint" + (
    " and the default one" if (table["fingerprint"] == "default").any() else "")
write_csv(table, snakemake.output.csv, record,  # noqa: F821
          comments=[title, "one row per molecule x fingerprint x attempt; rmsd / mirror_rmsd: "
                    "structure RMSD (A) to the original and to its mirror image "
                    "(milad.compare.compare); hand: original / mirror (within the structure "
                    "tolerance of that one only), either, neither; odd_sign: sign of the "
                    "decoded structure's parity-odd invariants relative to the original's"]
          + [f"note {i}: {line}" for i, line in enumerate(notes, 1)])
atomic_write_text(snakemake.output.md, chirality_markdown(  # noqa: F821
    molecules, table, notes, provenance_comment_lines(record, prefix=""), title))
