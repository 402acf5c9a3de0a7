"""Snakemake script (rule chirality_decode): one attempt at decoding one chiral QM9 molecule
from its chiral or default fingerprint, compared with the original and its mirror image
(milad.chirality.run_chirality_decode). Single-threaded: BLAS and numba are pinned to the
job's threads before numpy is imported."""

from milad_job import start_job

start_job(snakemake, pin_threads=True)  # noqa: F821

from milad.chirality import run_chirality_decode  # noqa: E402
from milad.provenance import job_provenance  # noqa: E402

wildcards, params = snakemake.wildcards, snakemake.params  # noqa: F821
record = run_chirality_decode(
    snakemake.input.subset,  # noqa: F821
    int(wildcards.qm9_id),
    wildcards.fingerprint,
    int(wildcards.attempt),
    snakemake.output.structure,  # noqa: F821
    snakemake.output.record,  # noqa: F821
    provenance=job_provenance(snakemake),  # noqa: F821
    seed=int(params.seed), mode=params.mode, descriptor=params.descriptor,
    threshold=float(params.threshold), structure_tolerance=float(params.structure_tolerance),
    **{key: int(value) for key, value in params.decode.items()},  # max_iterations, hops
)
print(
    f"QM9 ID {record['qm9_id']} ({record['formula']}, stereocentres {record['stereocentres']}), "
    f"{record['fingerprint']} fingerprint, attempt {record['attempt']}: "
    f"{'SUCCESS' if record['success'] else 'not decoded'}, fingerprint RMSD "
    f"{record['fingerprint_rmsd']:.3g}, RMSD to the original {record['rmsd']:.3g} A, to the "
    f"mirror image {record['mirror_rmsd']:.3g} A: {record['hand']}; decoded stereocentres "
    f"{record['decoded_stereocentres']}; {record['wall_s']:.1f} s"
)
