"""Snakemake script (rule qm9_subset): the paper's 77 QM9 molecules from the configured
source (milad.qm9.build_subset; source figshare: the archive first, milad.data.fetch_qm9_archive).
A regenerated subset that differs from the shipped one fails the job with every difference
listed; so does an archive that cannot be had or fails its checksum."""

import json
import warnings

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.data import fetch_qm9_archive  # noqa: E402
from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import job_provenance, with_provenance  # noqa: E402
from milad.qm9 import build_subset  # noqa: E402

params = snakemake.params  # noqa: F821
source = params.source
archive, fetched_record = None, None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if source == "figshare":
        figshare = params.figshare
        fetched = fetch_qm9_archive(
            params.archive, mirror=figshare["mirror"], download=bool(figshare["download"]),
            expected_sha256=figshare["sha256"], expected_md5=figshare["md5"], url=figshare["url"],
        )
        archive = fetched.path
        fetched_record = {"path": str(fetched.path), "url": fetched.url, "source": fetched.source,
                          "sha256": fetched.sha256, "verified": fetched.verified}
        print(f"QM9 archive: {json.dumps(fetched_record)}")
    print(f"QM9 subset from {source}")
    manifest = build_subset(
        source, snakemake.output.subset, archive=archive,  # noqa: F821
        shipped=snakemake.input.shipped,  # noqa: F821
    )
manifest["archive_fetch"] = fetched_record
manifest["warnings"] = [str(w.message) for w in caught]
for message in manifest["warnings"]:
    print(f"warning: {message}")
print(json.dumps(manifest, indent=1))
atomic_write_text(  # noqa: F821
    snakemake.output.manifest,  # noqa: F821
    json.dumps(with_provenance(manifest, job_provenance(snakemake)), indent=1) + "\n"  # noqa: F821
)
