"""The SLURM execution profile on a real Slurm cluster.

workflow/cluster/slurm_local.sh installs Debian's slurm-wlm and munge when absent, writes a
one-node configuration bound to 127.0.0.1 and starts munged, slurmctld and slurmd; the quick
configuration then runs with ``--profile profiles/slurm``: every job that is not a local
rule is submitted with sbatch, polled with squeue (no accounting database, so no sacct) and
its files are picked up when Slurm reports it COMPLETED. The daemons are stopped afterwards.

Needs root and apt (or Slurm already installed). Excluded from the default test run; .ci/run
runs it with ``python -m pytest -m slurm``. A failed installation or a cluster that does not
come up fails the test with the script's message, it does not hang.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from figure_files import assert_figure_files
from milad.provenance import read_csv
from workflow_support import (
    CLUSTER_SCRIPTS,
    PROFILES,
    QUICK_CONFIG,
    QUICK_RESULTS,
    job_counts,
    output_of,
    rule_inventory,
    snakemake,
)

pytestmark = pytest.mark.slurm

SCRIPT = CLUSTER_SCRIPTS / "slurm_local.sh"
#: Slurm client commands whose every call the test records (through wrappers on PATH).
WATCHED = ("sbatch", "squeue", "sacct")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node Slurm cluster; stopped after the tests of this module."""
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "MILAD_SLURM_DIR": str(state)}
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired as error:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120, check=False)
        pytest.fail(f"{SCRIPT.name} start did not finish within {error.timeout} s")
    if started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120, check=False)
        pytest.fail(
            f"could not start a local Slurm cluster ({SCRIPT.name} start exited with "
            f"{started.returncode}):\n{started.stdout}{started.stderr}"
        )
    try:
        yield {**env, "SLURM_CONF": str(state / "slurm.conf")}
    finally:
        stopped = subprocess.run(
            ["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=120
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def watch_commands(bin_dir, calls_log) -> None:
    """Wrappers for sbatch, squeue and sacct that log every call, then run the real one."""
    bin_dir.mkdir()
    for name in WATCHED:
        real = shutil.which(name)
        assert real, f"{name} is not installed"
        wrapper = bin_dir / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "{name} $*" >> "{calls_log}"\n'
            f'exec "{real}" "$@"\n'
        )
        wrapper.chmod(0o755)


def test_quick_run_through_slurm_profile(slurm_cluster, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    calls_log = tmp_path / "slurm_calls.log"
    watch_commands(tmp_path / "bin", calls_log)
    env = {**slurm_cluster, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    result = snakemake(
        workdir, "--profile", str(PROFILES / "slurm"), "--configfile", str(QUICK_CONFIG),
        # poll soon after submission: the jobs take seconds (the profile says 10)
        "--slurm-init-seconds-before-status-checks", "2",
        timeout=1500, env=env,
    )
    output = output_of(result)
    assert result.returncode == 0, output[-8000:]

    # every job that is not a local rule went through sbatch (Snakemake announces local
    # jobs as "localrule NAME:" or "localcheckpoint NAME:", the others as "rule NAME:" or
    # "checkpoint NAME:"; the plan grows after a checkpoint, so count the announcements
    # rather than the first job table)
    inventory = rule_inventory(str(QUICK_CONFIG))
    remote = re.findall(r"^\s*(?:rule|checkpoint) (\w+):", output, flags=re.M)
    local = re.findall(r"^\s*local(?:rule|checkpoint) (\w+):", output, flags=re.M)
    assert remote and local, output[-8000:]
    assert not [r for r in remote if inventory[r]["localrule"]]
    assert all(inventory[r]["localrule"] or not inventory[r]["runs"] for r in local)
    assert set(job_counts(output)) <= set(remote) | set(local)
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == len(remote), output[-8000:]
    calls = calls_log.read_text().splitlines()
    sbatch_calls = [c for c in calls if c.startswith("sbatch ")]
    assert len(sbatch_calls) == len(submitted)
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    assert all(f"--job-name {run_id}" in c for c in sbatch_calls)
    # ... and was polled with squeue, never with sacct (there is no accounting database)
    assert any(c.startswith("squeue ") and run_id in c for c in calls)
    assert not [c for c in calls if c.startswith("sacct ") and "--name" in c]

    # Slurm itself ran the jobs to completion (MinJobAge keeps them listed)
    listed = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", run_id, "--format=%i|%T"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()
    states = dict(line.split("|") for line in listed)
    assert set(states) == set(submitted)
    assert set(states.values()) == {"COMPLETED"}
    # one Slurm log per job, kept by the profile
    slurm_logs = list((workdir / "results" / "logs" / "slurm").rglob("*.log"))
    assert len(slurm_logs) == len(submitted)

    # the files came back: the quick run's results
    results = workdir / QUICK_RESULTS
    table = read_csv(results / "tables" / "table1.csv")
    algebraic = table.set_index(["quantity", "source"]).loc[("algebraically_independent", "milad")]
    l_max = yaml.safe_load(QUICK_CONFIG.read_text())["table1_l_max"]
    assert algebraic.tolist() == [3, 13, 28, 49, 77, 113][: l_max - 1]
    comparison = yaml.safe_load((results / "invariants" / "zernike_nmax7.comparison.json").read_text())
    assert comparison["status"] == "identical"
    assert_figure_files(results / "figures" / "fig_completeness.pdf",
                        results / "figures" / "fig_completeness.png")

    # and a second run finds nothing to do
    again = snakemake(
        workdir, "--profile", str(PROFILES / "slurm"), "--configfile", str(QUICK_CONFIG),
        timeout=300, env=env,
    )
    assert again.returncode == 0 and "Nothing to be done" in output_of(again), output_of(again)
