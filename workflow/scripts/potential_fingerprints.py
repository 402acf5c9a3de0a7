"""Snakemake script (rule potential_fingerprints): fingerprints and pair derivatives."""

import json
import sys
import time
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.data import read_mlearn  # noqa: E402
from milad.descriptor import Descriptor  # noqa: E402
from milad.potential import fingerprint_structures, mark_unavailable  # noqa: E402
from milad.provenance import provenance  # noqa: E402

directory = Path(snakemake.input[0])  # noqa: F821
manifest = json.loads((directory / "manifest.json").read_text())
if not manifest["available"]:
    print(f"NOT AVAILABLE: {manifest['reason']}; writing a stand-in that says so")
    mark_unavailable(snakemake.output[0], manifest["reason"])  # noqa: F821
    sys.exit(0)
frames = read_mlearn(directory / manifest["file"])
limit = snakemake.params.max_structures  # noqa: F821
if limit is not None:
    frames = frames[: int(limit)]
    print(f"max_structures = {limit}: using the first {len(frames)} structures")
descriptor = Descriptor.from_dict(snakemake.params.descriptor)  # noqa: F821
print(descriptor)
start = time.perf_counter()


def progress(done, total):
    if done % 25 == 0 or done == total:
        print(f"{done}/{total} structures, {time.perf_counter() - start:.1f} s")


data = fingerprint_structures(frames, descriptor, progress=progress)
data.metadata.update(
    element=manifest["element"], split=manifest["split"], sha256=manifest["sha256"],
    source=manifest["source"], n_structures_in_file=manifest["n_structures"],
    seconds=time.perf_counter() - start,
    provenance=provenance(snakemake.config, rule=snakemake.rule),  # noqa: F821
)
data.save(snakemake.output[0])  # noqa: F821
print(f"{len(data)} structures, {len(data.values)} atoms, {len(data.centers)} pairs, "
      f"{data.n_features} invariants in {time.perf_counter() - start:.1f} s")
