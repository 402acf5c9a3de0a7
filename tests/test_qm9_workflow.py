"""The QM9 decoding experiment through Snakemake itself (workflow/rules/qm9.smk).

The quick configuration (workflow/config/quick.yaml: four molecules of 3 to 5 atoms, one
attempt per mode, reduced decode effort) is run once per test process by
``workflow_support.quick_run`` and copied by the tests that change files. Checked here: the
tidy table and the figures; the default configuration plans one job per decode; rerunning
does nothing; deleting one decode result redoes that decode and what depends on it, nothing
else; the regeneration of the subset from qm9pack or figshare fails loudly when it cannot
reproduce the shipped file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from figure_files import assert_figure_files
from milad.provenance import read_csv
from workflow_support import (
    QUICK_CONFIG,
    QUICK_RESULTS,
    ROOT,
    USES_QUICK_RUN,
    copy_run,
    job_counts,
    output_of,
    quick_run,
    result_files,
    rule_inventory,
    snakemake,
)

QUICK = ("--configfile", str(QUICK_CONFIG))
TARGETS = ("fig2", "fig3", "fig5", "fig6", "fig7", "si_fig1", "si_fig2", "qm9_summary")
FIXTURE = ROOT / "tests" / "data" / "qm9" / "dsgdb9nsd_fixture.xyz.tar.bz2"


def quick_qm9() -> dict:
    return yaml.safe_load(QUICK_CONFIG.read_text())["qm9"]


def test_default_config_plans_one_job_per_decode(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", "qm9_summary")
    assert result.returncode == 0, output_of(result)
    counts = job_counts(result.stdout)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())["qm9"]
    assert config["source"] == "shipped" and config["attempts"] == 3
    assert counts["qm9_decode"] == 77 * 3 * 3
    assert counts["qm9_subset"] == counts["qm9_decodes"] == counts["qm9_summary_table"] == 1
    assert counts["qm9_rdkit_validation"] == 2
    # the largest molecules ask for the most time and memory
    assert "runtime=63, mem_mb=1580" in result.stdout  # 29 atoms, positions / single


@USES_QUICK_RUN
def test_quick_run_decodes_every_molecule_in_every_mode():
    from milad.qm9 import COLUMNS, decode_seed

    workdir = quick_run()
    config = quick_qm9()
    table = read_csv(workdir / QUICK_RESULTS / "qm9" / "decodes.csv")
    assert list(table.columns) == list(COLUMNS)
    assert sorted(set(table["qm9_id"])) == sorted(config["molecules"])
    assert len(table) == len(config["molecules"]) * 3 * config["attempts"]
    assert set(table["mode"]) == {"positions", "single", "two"}
    assert (table["n_atoms"].between(3, 6)).all()
    for row in table.itertuples():
        assert row.seed == decode_seed(config["seed"], row.qm9_id, row.attempt)
    assert table["point_group"].notna().all() and (table["point_group"] != "").all()
    # these small molecules decode in every mode, and the comparison agrees
    assert table["success"].all(), table
    assert (table["structure_rmsd"] < 0.01).all()
    assert table.loc[table["mode"] != "positions", "species_correct"].astype(bool).all()
    record = json.loads(
        (workdir / QUICK_RESULTS / "qm9" / "decodes" / "two"
         / f"{config['molecules'][0]}_1.json").read_text())
    assert record["positions_from"].endswith(f"positions/{config['molecules'][0]}_1.extxyz")
    assert record["provenance"]["wildcards"] == {
        "mode": "two", "qm9_id": str(config["molecules"][0]), "attempt": "1"}

    summary = read_csv(workdir / QUICK_RESULTS / "tables" / "qm9_summary.csv")
    assert list(summary["mode"]) == ["positions", "single", "two"]
    assert list(summary["paper_success_rate_percent"]) == [97, 70, 95]
    markdown = (workdir / QUICK_RESULTS / "tables" / "qm9_summary.md").read_text()
    # a smoke test: not set against the paper (no "FALLS SHORT" for 5 atoms vs the paper's 29)
    assert (f"Smoke test: {len(config['molecules'])} molecule(s), not comparable with the "
            "paper") in markdown
    assert "FALLS SHORT" not in markdown
    assert "not the paper's 77 molecules" in markdown and "RDKit validation" in markdown
    figures = workdir / QUICK_RESULTS / "figures"
    for name in ("fig2", "fig3", "fig5", "fig6", "fig7", "si_fig1", "si_fig2"):
        assert_figure_files(figures / f"{name}.pdf", figures / f"{name}.png")


@USES_QUICK_RUN
def test_rerunning_the_qm9_targets_does_nothing(tmp_path):
    workdir = copy_run(quick_run(), tmp_path / "run")
    before = result_files(workdir)
    result = snakemake(workdir, "--cores", "2", *TARGETS, *QUICK)
    assert result.returncode == 0, output_of(result)
    assert "Nothing to be done" in output_of(result), output_of(result)
    assert result_files(workdir) == before


@USES_QUICK_RUN
def test_deleting_one_decode_reruns_only_it_and_its_dependents(tmp_path):
    workdir = copy_run(quick_run(), tmp_path / "run")
    before = result_files(workdir)
    qm9_id = quick_qm9()["molecules"][-1]
    deleted = f"{QUICK_RESULTS}/qm9/decodes/single/{qm9_id}_1.json"
    (workdir / deleted).unlink()

    dependents = {"qm9_decodes": 1, "fig5": 1, "fig6": 1, "fig7": 1, "si_fig2": 1,
                  "qm9_summary_table": 1}
    plan = snakemake(workdir, "--cores", "2", "--dry-run", "qm9_summary", *QUICK)
    assert plan.returncode == 0, output_of(plan)
    assert job_counts(plan.stdout) == {"qm9_decode": 1, **dependents, "qm9_summary": 1}
    plan = snakemake(workdir, "--cores", "2", "--dry-run", *QUICK)
    assert job_counts(plan.stdout) == {"qm9_decode": 1, **dependents, "all": 1}

    result = snakemake(workdir, "--cores", "2", *QUICK)
    assert result.returncode == 0, output_of(result)
    after = result_files(workdir)
    assert set(after) == set(before)
    rewritten = {path for path in before if after[path] != before[path]} | {deleted}
    assert rewritten == {
        deleted, f"{QUICK_RESULTS}/qm9/decodes/single/{qm9_id}_1.extxyz",
        f"{QUICK_RESULTS}/qm9/decodes.csv",
        *(f"{QUICK_RESULTS}/figures/{name}.{ext}" for name in ("fig5", "fig6", "fig7", "si_fig2")
          for ext in ("pdf", "png")),
        *(f"{QUICK_RESULTS}/tables/qm9_summary.{ext}" for ext in ("csv", "md", "html")),
    }


@USES_QUICK_RUN
def test_the_species_decode_follows_its_positions_decode(tmp_path):
    """Mode "two" starts from the positions decoded in mode "positions" (same molecule and
    attempt): redoing that decode redoes the species fit, and no other decode."""
    workdir = copy_run(quick_run(), tmp_path / "run")
    qm9_id = quick_qm9()["molecules"][0]
    (workdir / f"{QUICK_RESULTS}/qm9/decodes/positions/{qm9_id}_1.extxyz").unlink()
    plan = snakemake(workdir, "--cores", "2", "--dry-run", "qm9_summary", *QUICK)
    assert plan.returncode == 0, output_of(plan)
    assert job_counts(plan.stdout)["qm9_decode"] == 2
    jobs = [block for block in plan.stdout.split("rule qm9_decode:")[1:]]
    assert sorted(b.split("wildcards: ")[1].split("\n")[0] for b in jobs) == [
        f"mode=positions, qm9_id={qm9_id}, attempt=1", f"mode=two, qm9_id={qm9_id}, attempt=1"]


def _override(tmp_path, qm9: dict) -> Path:
    override = tmp_path / "source.yaml"
    override.write_text(yaml.safe_dump({"qm9": qm9}))
    return override


def _subset_run(tmp_path, qm9: dict):
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = snakemake(workdir, "--cores", "1", f"{QUICK_RESULTS}/qm9/subset.extxyz",
                       "--configfile", str(QUICK_CONFIG), str(_override(tmp_path, qm9)))
    log = workdir / QUICK_RESULTS / "logs" / "qm9" / "subset.log"
    return result, log.read_text() if log.exists() else ""


def test_qm9pack_source_without_the_package_fails_saying_how_to_install_it(tmp_path):
    import importlib.util

    if importlib.util.find_spec("qm9pack") is not None:  # pragma: no cover - not installed here
        import pytest

        pytest.skip("qm9pack is installed")
    result, log = _subset_run(tmp_path, {"source": "qm9pack"})
    assert result.returncode != 0
    assert "pip install qm9pack" in log, log + output_of(result)
    assert not (tmp_path / "run" / QUICK_RESULTS / "qm9" / "subset.extxyz").exists()


def test_figshare_archive_lacking_molecules_fails_loudly(tmp_path):
    """The test archive holds 3 of the 77 molecules: regeneration stops, naming the missing
    IDs. It is read as the local copy (verified against its MD5 and sha256), never downloaded."""
    content = FIXTURE.read_bytes()
    digest, md5 = hashlib.sha256(content).hexdigest(), hashlib.md5(content).hexdigest()
    figshare = {"source": "figshare", "figshare": {
        "mirror": str(FIXTURE), "md5": md5, "sha256": digest, "download": False}}
    # the archive is fetched where Snakemake runs (cluster nodes may be offline)
    assert rule_inventory(str(QUICK_CONFIG), str(_override(tmp_path, figshare)))[
        "qm9_subset"]["localrule"]
    assert not rule_inventory(str(QUICK_CONFIG))["qm9_subset"]["localrule"]
    result, log = _subset_run(tmp_path, figshare)
    assert result.returncode != 0
    assert '"source": "mirror"' in log and '"verified": true' in log, log
    assert "QM9 IDs not found" in log and "19" in log, log
    archive = tmp_path / "run" / "resources" / "qm9" / "dsgdb9nsd.xyz.tar.bz2"
    assert archive.read_bytes() == FIXTURE.read_bytes()
    assert not (tmp_path / "run" / QUICK_RESULTS / "qm9" / "subset.extxyz").exists()
    assert Path(FIXTURE).exists()
