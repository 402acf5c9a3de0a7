"""Snakemake script (rule qm9_rdkit_validation): the supplementary validation of the
fingerprint as a similarity measure, positions only or with species
(milad.compare.rdkit_validation, SI Fig. 1)."""

from milad_job import start_job

start_job(snakemake, pin_threads=True)  # noqa: F821

from milad.compare import rdkit_validation  # noqa: E402
from milad.data import read_qm9_subset  # noqa: E402
from milad.provenance import job_provenance, write_csv  # noqa: E402
from milad.qm9 import descriptors, select_molecules  # noqa: E402

params = snakemake.params  # noqa: F821
species = snakemake.wildcards.kind == "species"  # noqa: F821
molecules = select_molecules(read_qm9_subset(snakemake.input[0]), params.molecules)  # noqa: F821
plain, with_species = descriptors(params.descriptor)
table = rdkit_validation(molecules, n_trials=int(params.trials), seed=int(params.seed),
                         species=species, descriptor=with_species if species else plain)
print(table.groupby(["kind", "n_atoms"])[["rmsd", "fingerprint_rmsd"]].max().to_string())
write_csv(table, snakemake.output[0], job_provenance(snakemake),  # noqa: F821
          comments=[f"SI Fig. 1 data, {'with species' if species else 'positions only'}: "
                    "kind self = a rotated, relabelled copy of the molecule, pair = two "
                    "different molecules of the same size; rmsd / mirror_rmsd in Angstrom "
                    "(milad.compare.compare, RDKit), fingerprint_rmsd dimensionless"])
