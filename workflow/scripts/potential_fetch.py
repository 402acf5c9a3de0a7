"""Snakemake script (rule mlearn_data): one mlearn file from the copy shipped with milad, the
mirror or GitHub, checked.

Writes ``<output>/<split>.json`` (the verified file) and ``<output>/manifest.json``. A file
that cannot be had (missing from the mirror and not downloadable, or corrupt) does not fail
the job: the manifest says ``available: false`` and why, and the element's table rows say so.
"""

import json
import warnings
from collections import Counter
from pathlib import Path

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.data import (  # noqa: E402
    MLEARN_COMMIT,
    ChecksumError,
    DataUnavailableError,
    fetch_mlearn,
    mlearn_url,
    read_mlearn,
)
from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import provenance  # noqa: E402

element = snakemake.wildcards.element  # noqa: F821
split = snakemake.wildcards.split  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
out.mkdir(parents=True, exist_ok=True)
pin = snakemake.params.sha256  # noqa: F821
# not a param (see the rule): configurations differing only there share resources/
download = snakemake.config["potentials"]["data"]["download"]  # noqa: F821
manifest = {
    "element": element,
    "split": split,
    "url": mlearn_url(element, split),
    "commit": MLEARN_COMMIT,
    "mirror": snakemake.params.mirror,  # noqa: F821
    "mirror_sha256": snakemake.params.mirror_sha256,  # noqa: F821
    "download_allowed": bool(download),
}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        fetched = fetch_mlearn(
            element, split, out / f"{split}.json", mirror=snakemake.params.mirror,  # noqa: F821
            download=bool(download),
            expected_sha256=pin if pin else "pinned",
        )
        frames = read_mlearn(fetched.path)
    except (ChecksumError, DataUnavailableError, ValueError) as error:
        manifest.update(available=False, reason=str(error))
        (out / f"{split}.json").unlink(missing_ok=True)
        print(f"NOT AVAILABLE: {error}")
        print(f"-> {element} {split} data are missing: the tables say so for {element}; "
              "every other element still runs")
    else:
        manifest.update(
            available=True,
            file=f"{split}.json",
            source=fetched.source,
            sha256=fetched.sha256,
            sha256_verified=fetched.verified,
            n_structures=len(frames),
            n_atoms=int(sum(len(a) for a in frames)),
            groups=dict(sorted(Counter(a.info.get("group", "") for a in frames).items())),
        )
        print(f"{element}/{split}.json: {len(frames)} structures from {fetched.source} "
              f"(sha256 {fetched.sha256}, verified: {fetched.verified})")
manifest["warnings"] = [str(w.message) for w in caught]
for message in manifest["warnings"]:
    print(f"warning: {message}")
manifest["provenance"] = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
