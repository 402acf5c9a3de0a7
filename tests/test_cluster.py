"""Cluster execution without a scheduler: Snakemake's generic cluster executor with a
stand-in "scheduler" (workflow/cluster/generic_submit.sh and generic_status.sh) that runs
each job script detached in the background. Every job goes through submission, status
polling and file hand-back as on a cluster. The real-Slurm test is tests/test_slurm.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from figure_files import assert_figure_files
from milad.provenance import read_csv
from workflow_support import (
    CLUSTER_SCRIPTS,
    QUICK_CONFIG,
    QUICK_RESULTS,
    job_counts,
    output_of,
    snakemake,
)

TARGETS = ("table1", "fig_completeness")
SLURM_SCRIPT = CLUSTER_SCRIPTS / "slurm_local.sh"


def test_generic_cluster_executor_runs_every_job_through_submission(tmp_path):
    jobs_dir = tmp_path / "fake_cluster"
    result = snakemake(
        tmp_path, *TARGETS, "--configfile", str(QUICK_CONFIG),
        "--executor", "cluster-generic",
        "--cluster-generic-submit-cmd", str(CLUSTER_SCRIPTS / "generic_submit.sh"),
        "--cluster-generic-status-cmd", str(CLUSTER_SCRIPTS / "generic_status.sh"),
        "--jobs", "2", "--latency-wait", "10", "--seconds-between-status-checks", "1",
        timeout=600,
        env={**os.environ, "MILAD_FAKE_CLUSTER_DIR": str(jobs_dir)},
    )
    output = output_of(result)
    assert result.returncode == 0, output
    planned = {rule: n for rule, n in job_counts(output).items() if rule != "all"}
    submitted = output.count("with external jobid")
    assert submitted == sum(planned.values()) >= 4, output
    # every submitted job ran through the stand-in and ended with exit status 0
    exits = sorted(jobs_dir.glob("*.exit"))
    assert len(exits) == submitted
    assert all(path.read_text().strip() == "0" for path in exits)
    table = read_csv(tmp_path / QUICK_RESULTS / "tables" / "table1.csv")
    algebraic = table.set_index(["quantity", "source"]).loc[("algebraically_independent", "milad")]
    l_max = yaml.safe_load(QUICK_CONFIG.read_text())["table1_l_max"]
    assert algebraic.tolist() == [3, 13, 28, 49, 77, 113][: l_max - 1]
    figures = tmp_path / QUICK_RESULTS / "figures"
    assert_figure_files(figures / "fig_completeness.pdf", figures / "fig_completeness.png")


# ---------------------------------------------------- the Slurm setup script fails clearly


def test_slurm_script_refuses_without_root(tmp_path):
    """Where it cannot work, the setup script stops at once with a message."""
    command = ["bash", str(SLURM_SCRIPT), "start"]
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("no runuser to drop root")
        command = ["runuser", "-u", "nobody", "--", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60,
        env={**os.environ, "MILAD_SLURM_DIR": str(tmp_path / "state")},
    )
    assert result.returncode == 1
    assert "must run as root" in result.stderr


def test_slurm_script_reports_a_failed_installation(tmp_path):
    """A failing apt-get ends the setup with exit status 1 and the reason, no hang."""
    if os.geteuid() != 0:
        pytest.skip("the setup script needs root")
    fake = tmp_path / "bin"
    fake.mkdir()
    apt = fake / "apt-get"
    apt.write_text('#!/bin/sh\necho "E: Unable to locate package slurm-wlm (simulated)" >&2\nexit 100\n')
    apt.chmod(0o755)
    # a PATH without /usr/sbin hides an installed slurmctld, so the script tries to install
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin", "MILAD_SLURM_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        ["bash", str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 1
    assert "could not install slurm-wlm and munge with apt-get" in result.stderr
    assert "simulated" in result.stderr  # the tail of apt's own output
