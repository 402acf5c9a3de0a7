"""Start-up shared by every Snakemake script of the pipeline.

Snakemake puts this folder on ``sys.path`` for its scripts, so each script begins with::

    from milad_job import start_job

    start_job(snakemake)  # noqa: F821

before it imports ``milad`` or numpy.
"""

import os
import sys
from pathlib import Path

#: variables read by BLAS, OpenMP, numexpr and numba when they load
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def start_job(snakemake, *, pin_threads: bool = False, torch_threads: bool = False) -> None:
    """Prepare one job: import ``milad`` from this checkout (also inside a conda environment
    that holds only its dependencies), send stdout and stderr to the job's log, draw figures
    with matplotlib's file-only Agg backend, and limit the
    job to its ``threads``: BLAS, OpenMP and numba before numpy loads (``pin_threads``, which
    must then come before any numpy import) and torch (``torch_threads``)."""
    if pin_threads:
        if "numpy" in sys.modules:
            raise RuntimeError("start_job(pin_threads=True) must run before numpy is imported")
        for name in THREAD_VARIABLES:
            os.environ[name] = str(snakemake.threads)
    os.environ["MPLBACKEND"] = "Agg"  # figures are written to files, never shown
    sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
    sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)
    if torch_threads:
        import torch

        torch.set_num_threads(int(snakemake.threads))
