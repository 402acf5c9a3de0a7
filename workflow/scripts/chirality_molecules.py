"""Snakemake script (checkpoint chirality_molecules): the stereocentres, with CIP labels, of
every molecule looked at (milad.chirality.chiral_molecules_table, RDKit from the 3D
structure)."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.chirality import chiral_molecules_table  # noqa: E402
from milad.data import read_qm9_subset  # noqa: E402
from milad.provenance import job_provenance, write_csv  # noqa: E402
from milad.qm9 import select_molecules  # noqa: E402

molecules = select_molecules(read_qm9_subset(snakemake.input[0]),  # noqa: F821
                             snakemake.params.molecules)  # noqa: F821
table = chiral_molecules_table(molecules)
print(table[table["chiral"]].to_string(index=False))
print(f"{int(table['chiral'].sum())} of {len(table)} molecules have a stereocentre")
write_csv(table, snakemake.output[0], job_provenance(snakemake),  # noqa: F821
          comments=["Stereocentres of the QM9 subset's molecules (RDKit from the 3D structure: "
                    "DetermineBonds, AssignStereochemistryFrom3D, FindMolChiralCenters with "
                    "includeUnassigned): element, 0-based atom index, CIP label (? = none)"])
