"""The Snakemake pipeline: planning, config validation, lint and a real quick run.

Every run goes into a temporary --directory so the repository's results/ is never touched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"


def snakemake(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile with ``workdir`` as working directory."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), *args,
    ]
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run or dry run as {rule: count}."""
    counts = {}
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines():
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s+(\d+)\s*", line)
        if match:
            counts[match.group(1)] = int(match.group(2))
        elif counts and not line.strip():
            break
    return counts


def test_dry_run_plans_every_table_and_figure(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    n_sets = len(yaml.safe_load((ROOT / "config.yaml").read_text())["invariant_n_max"])
    assert counts["generate_invariants"] == n_sets
    assert counts["compare_invariants"] == n_sets
    assert counts["table1"] == 1
    assert counts["fig_completeness"] == 1
    assert counts["all"] == 1


def test_quick_config_is_valid_and_smaller(tmp_path):
    result = snakemake(
        tmp_path, "--dry-run", "--cores", "1",
        "--configfile", str(ROOT / "workflow" / "config" / "quick.yaml"),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert job_counts(result.stdout)["generate_invariants"] == 1


@pytest.mark.parametrize(
    "option, key",
    [
        ("--configfile", "table1_lmax"),  # mistyped key in a config file
        ("--config", "completness_n_max"),  # mistyped key on the command line
    ],
)
def test_mistyped_config_key_is_rejected_by_name(tmp_path, option, key):
    if option == "--configfile":
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"{key}: 4\n")
        args = ("--configfile", str(bad))
    else:
        args = ("--config", f"{key}=7")
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", *args)
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "Error validating config file" in output
    assert f"'{key}' was unexpected" in output


def test_wrong_config_type_is_rejected_by_name(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", "--config", "table1_l_max=seven")
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "Error validating config file" in output
    assert "instance['table1_l_max']" in output


def test_lint_reports_nothing(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_quick_run_end_to_end(tmp_path):
    """Quick config with Table I cut at l_max = 4: every rule runs for real through Snakemake."""
    result = snakemake(
        tmp_path, "--cores", "2",
        "--configfile", str(ROOT / "workflow" / "config" / "quick.yaml"),
        "--config", "table1_l_max=4",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    results = tmp_path / "results"

    table = pd.read_csv(results / "tables" / "table1.csv", comment="#")
    assert list(table.columns) == ["quantity", "source", "2", "3", "4"]
    rows = table.set_index(["quantity", "source"])
    assert rows.loc[("algebraically_independent", "milad")].tolist() == [3, 13, 28]
    assert rows.loc[("algebraically_independent", "paper")].tolist() == [3, 13, 28]
    assert rows.loc[("all", "paper")].tolist() == [4, 16, 49]
    header = (results / "tables" / "table1.csv").read_text()
    for field in ("milad_version", "git_commit", "config", "note 2"):
        assert f"# {field}" in header
    markdown = (results / "tables" / "table1.md").read_text()
    assert "## Notes" in markdown and "## Provenance" in markdown

    report = yaml.safe_load((results / "invariants" / "zernike_nmax7.comparison.json").read_text())
    assert report["status"] == "identical"
    assert report["count"] == 117

    for name in ("fig_completeness.pdf", "fig_completeness.png", "fig_completeness.csv"):
        assert (results / "figures" / name).stat().st_size > 0
    for rule in ("table1", "fig_completeness"):
        assert (results / "logs" / f"{rule}.log").exists()
        assert (results / "benchmarks" / f"{rule}.tsv").exists()


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_conda_env_matches_pyproject():
    """envs/milad.yaml lists exactly the runtime dependencies of pyproject.toml, pinned."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_requirement_name(r) for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "envs" / "milad.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert all("==" in r for r in pip_section), "pin every package of envs/milad.yaml"
    assert {_requirement_name(r) for r in pip_section} == wanted


def test_every_rule_declares_log_benchmark_resources_and_env():
    """Every rule that runs something has log, benchmark, threads, resources and conda."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    rules = re.split(r"\n(?=rule \w+:)", "\n" + text)
    checked = 0
    for rule in rules:
        match = re.match(r"\s*rule (\w+):", rule)
        if not match or not re.search(r"\n\s+(script|shell|run):", rule):
            continue
        checked += 1
        for directive in ("log:", "benchmark:", "threads:", "resources:", "mem_mb=",
                          "runtime=", "conda:"):
            assert directive in rule, f"rule {match.group(1)} lacks {directive}"
    assert checked >= 4


def test_provenance_record():
    from milad import __version__
    from milad.provenance import provenance, provenance_comment_lines

    record = provenance({"table1_l_max": 4}, rule="test")
    assert record["milad_version"] == __version__
    assert record["config"] == {"table1_l_max": 4}
    assert record["rule"] == "test"
    assert record["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    lines = provenance_comment_lines(record)
    assert lines[0].startswith("# milad_version: ")
