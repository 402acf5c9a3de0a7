"""Snakemake script (rule qm9_decode): one attempt at decoding one QM9 molecule in one mode,
compared with the original (milad.qm9.run_decode). Single-threaded: BLAS and numba are pinned
to the job's threads before numpy is imported."""

import time

from milad_job import start_job

_start = time.perf_counter()
start_job(snakemake, pin_threads=True)  # noqa: F821

from milad.provenance import job_provenance  # noqa: E402
from milad.qm9 import run_decode  # noqa: E402

wildcards = snakemake.wildcards  # noqa: F821
params = snakemake.params  # noqa: F821
print(f"imports: {time.perf_counter() - _start:.2f} s")
record = run_decode(
    snakemake.input.subset,  # noqa: F821
    int(wildcards.qm9_id),
    wildcards.mode,
    int(wildcards.attempt),
    snakemake.output.structure,  # noqa: F821
    snakemake.output.record,  # noqa: F821
    positions_path=getattr(snakemake.input, "positions", None),  # noqa: F821
    provenance=job_provenance(snakemake),  # noqa: F821
    seed=int(params.seed),
    threshold=float(params.threshold),
    descriptor=params.descriptor,
    max_iterations=int(params.decode["max_iterations"]),
    hops=int(params.decode["hops"]),
)
print(
    f"QM9 ID {record['qm9_id']} ({record['formula']}, {record['n_atoms']} atoms), mode "
    f"{record['mode']}, attempt {record['attempt']}, seed {record['seed']}: "
    f"{'SUCCESS' if record['success'] else 'not decoded'}, fingerprint RMSD "
    f"{record['fingerprint_rmsd']:.3g}, structure RMSD {record['structure_rmsd']:.3g} A "
    f"({record['matched']}), {record['iterations']} iterations, decode {record['wall_s']:.1f} s, "
    f"compare {record['compare_s']:.2f} s"
)
print(f"job total (after the interpreter started): {time.perf_counter() - _start:.2f} s")
