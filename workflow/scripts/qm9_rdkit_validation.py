"""Snakemake script (rule qm9_rdkit_validation): the supplementary validation of the
fingerprint as a similarity measure, positions only or with species
(milad.compare.rdkit_validation, SI Fig. 1)."""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = str(snakemake.threads)  # noqa: F821

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from milad.compare import rdkit_validation  # noqa: E402
from milad.data import read_qm9_subset  # noqa: E402
from milad.descriptor import Descriptor  # noqa: E402
from milad.provenance import job_provenance, write_csv  # noqa: E402
from milad.qm9 import select_molecules  # noqa: E402

params = snakemake.params  # noqa: F821
species = snakemake.wildcards.kind == "species"  # noqa: F821
molecules = select_molecules(read_qm9_subset(snakemake.input[0]), params.molecules)  # noqa: F821
descriptor = Descriptor(
    n_max=int(params.descriptor["n_max"]), cutoff=float(params.descriptor["cutoff"]),
    species=params.descriptor["species"] if species else None,
)
table = rdkit_validation(molecules, n_trials=int(params.trials), seed=int(params.seed),
                         species=species, descriptor=descriptor)
print(table.groupby(["kind", "n_atoms"])[["rmsd", "fingerprint_rmsd"]].max().to_string())
write_csv(table, snakemake.output[0], job_provenance(snakemake),  # noqa: F821
          comments=[f"SI Fig. 1 data, {'with species' if species else 'positions only'}: "
                    "kind self = a rotated, relabelled copy of the molecule, pair = two "
                    "different molecules of the same size; rmsd / mirror_rmsd in Angstrom "
                    "(milad.compare.compare, RDKit), fingerprint_rmsd dimensionless"])
