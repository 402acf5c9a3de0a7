"""Helpers for the tests that run the Snakemake pipeline (test_workflow, test_robustness,
test_cluster, test_slurm).

Every run goes into a temporary ``--directory`` so that the repository's ``results/`` is never
touched. The quick configuration is run once per test process (:func:`quick_run`) and copied
(:func:`copy_run`) by tests that change files.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
QUICK_CONFIG = ROOT / "workflow" / "config" / "quick.yaml"
#: The quick configuration's results folder (its config key ``results``), relative to a run's
#: working directory.
QUICK_RESULTS = yaml.safe_load(QUICK_CONFIG.read_text())["results"]
PROFILES = ROOT / "profiles"
CLUSTER_SCRIPTS = ROOT / "workflow" / "cluster"

#: Files under a results folder that are bookkeeping, not results.
BOOKKEEPING = ("logs/", "benchmarks/", "report")


def snakemake(
    workdir: Path, *args: str, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile with ``workdir`` as working directory."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), *args,
    ]
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False,
        env=env,
    )


def output_of(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + (result.stderr or "")


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run or dry run as {rule: count}; {} if none."""
    if "Job stats:" not in output:
        return {}
    counts = {}
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines():
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s+(\d+)\s*", line)
        if match:
            if match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
        elif counts and not line.strip():
            break
    return counts


#: Mark of every test that reads :func:`quick_run`: under pytest-xdist (``-n 2 --dist loadgroup``
#: in pyproject.toml) they share one worker, so the quick run is made once per test session
#: while the other worker runs the rest, not once per worker.
USES_QUICK_RUN = pytest.mark.xdist_group("quick_run")


@lru_cache(maxsize=None)
def quick_run() -> Path:
    """Working directory of one complete run of the quick configuration (made once per test
    process; mark the tests that call it with :data:`USES_QUICK_RUN`)."""
    workdir = Path(tempfile.mkdtemp(prefix="milad-quick-run-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    result = snakemake(workdir, "--cores", "2", "--configfile", str(QUICK_CONFIG), timeout=600)
    if result.returncode != 0:
        raise AssertionError("quick run failed:\n" + output_of(result)[-6000:])
    return workdir


def copy_run(source: Path, target: Path) -> Path:
    """Copy a run directory with its .snakemake metadata, keeping modification times."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=False)
    # a lock left by nothing: copies never hold locks, but be safe
    shutil.rmtree(target / ".snakemake" / "locks", ignore_errors=True)
    return target


def result_files(workdir: Path, results: str = QUICK_RESULTS) -> dict[str, int]:
    """{path relative to workdir: mtime in ns} of every result file (not logs, benchmarks)
    under the results folder ``results`` (default: the quick configuration's)."""
    files = {}
    for path in sorted((workdir / results).rglob("*")):
        inside = path.relative_to(workdir / results).as_posix()
        if path.is_file() and not inside.startswith(BOOKKEEPING):
            files[path.relative_to(workdir).as_posix()] = path.stat().st_mtime_ns
    return files


_INVENTORY = r'''
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, workdir = Path(sys.argv[1]), Path(sys.argv[2])
configfiles = [Path(p) for p in sys.argv[3:]]
with SnakemakeApi(OutputSettings()) as api:
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=configfiles),
        snakefile=snakefile,
        workdir=workdir,
    )
    workflow = workflow_api._workflow
    rules = {}
    for rule in workflow.rules:
        def flag(f, name):
            return f.flags.get(name) if hasattr(f, "flags") else None
        outputs = []
        for f in rule.output:
            report = flag(f, "report")
            outputs.append({
                "path": str(f),
                "report": report is not None,
                "caption": str(report.caption.get_path_or_uri(secret_free=True))
                           if report is not None and report.caption is not None else None,
                "category": report.category if report is not None else None,
            })
        resources = {k: (v if isinstance(v, (int, float, str)) else repr(v))
                     for k, v in rule.resources.items()}
        rules[rule.name] = {
            "name": rule.name,
            "snakefile": str(rule.snakefile),
            "runs": not rule.norun,
            "localrule": rule.name in workflow._localrules,
            "log": [str(f) for f in rule.log],
            "benchmark": str(rule.benchmark) if rule.benchmark is not None else None,
            "resources": resources,
            "conda": str(rule.conda_env) if rule.conda_env is not None else None,
            "wildcards": sorted(rule.wildcard_names),
            "outputs": outputs,
        }
print("INVENTORY" + json.dumps(rules))
'''


@lru_cache(maxsize=None)
def rule_inventory(*configfiles: str) -> dict[str, dict]:
    """Every rule of the workflow as loaded by Snakemake: logs, benchmark, resources, conda
    environment, wildcards, outputs and their report flags (JSON from a subprocess)."""
    workdir = Path(tempfile.mkdtemp(prefix="milad-inventory-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-c", _INVENTORY, str(SNAKEFILE), str(workdir), *configfiles],
        capture_output=True, text=True, timeout=300, check=False, cwd=workdir,
    )
    marker = [line for line in result.stdout.splitlines() if line.startswith("INVENTORY")]
    if result.returncode != 0 or not marker:
        raise AssertionError("could not load the workflow:\n" + output_of(result)[-6000:])
    return json.loads(marker[-1][len("INVENTORY"):])


def rule_source(info: dict) -> str:
    """Source text of one rule (from its ``rule NAME:`` line to the next top-level line)."""
    lines = Path(info["snakefile"]).read_text().splitlines()
    header = re.compile(rf"(rule|checkpoint)\s+{re.escape(info['name'])}\s*:")
    start = next(i for i, line in enumerate(lines) if header.match(line))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip() and not line[0].isspace():
            break
        block.append(line)
    return "\n".join(block)


def environment_without(*names: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in names:
        env.pop(name, None)
    return env
