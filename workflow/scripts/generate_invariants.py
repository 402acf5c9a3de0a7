"""Snakemake script: regenerate the Zernike invariant set of one order (rule generate_invariants),
or its parity-odd part (rule generate_chiral_invariants, ``params.chiral``)."""

import time

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.invariants import generate_chiral_invariants, generate_zernike_invariants  # noqa: E402
from milad.provenance import job_provenance  # noqa: E402

n_max = int(snakemake.wildcards.n_max)  # noqa: F821
seed = int(snakemake.params.seed)  # noqa: F821
chiral = bool(getattr(snakemake.params, "chiral", False))  # noqa: F821
start = time.perf_counter()
generate = generate_chiral_invariants if chiral else generate_zernike_invariants
invariant_set = generate(n_max, n_min=0, seed=seed)
print(f"n_max={n_max} seed={seed}{' chiral' if chiral else ''}: {len(invariant_set)} invariants, "
      f"by correlation order {invariant_set.counts_by_degree()}, "
      f"metadata {invariant_set.metadata}, {time.perf_counter() - start:.1f} s")
if chiral and n_max >= 4 and not invariant_set.metadata.get("detects"):  # the lowest has order 4
    raise RuntimeError(f"the generated parity-odd set for n_max={n_max} detects no chiral point group")
if not chiral and not invariant_set.metadata.get("complete"):
    raise RuntimeError(
        f"the generated set for n_max={n_max} has {len(invariant_set)} invariants, not "
        f"(number of moments) - 3 = {invariant_set.metadata.get('moments_used', 0) - 3}"
    )
invariant_set.metadata["provenance"] = job_provenance(snakemake)  # noqa: F821
invariant_set.save(snakemake.output[0])  # noqa: F821
