"""What users do to a pipeline run: kill it half-way, delete an output, run it again.

- A run killed in the middle of a job (SIGKILL to Snakemake and its jobs, as a crash or a
  lost session would) resumes with --rerun-incomplete: the killed job is redone, no finished
  job is lost or redone.
- Deleting one output reruns exactly the job that wrote it and the jobs that use it.
- Running a finished target again does nothing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64decode

from workflow_support import (
    QUICK_CONFIG,
    QUICK_RESULTS,
    SNAKEFILE,
    USES_QUICK_RUN,
    copy_run,
    job_counts,
    output_of,
    quick_run,
    result_files,
    snakemake,
)

QUICK = ("--configfile", str(QUICK_CONFIG))


def started_jobs(log: str) -> dict[int, dict]:
    """{jobid: {"rule": name, "output": [paths]}} of the jobs a Snakemake log says started."""
    jobs = {}
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", log):
        header = re.match(r"\s*(?:local)?rule (\w+):", block)
        jobid = re.search(r"^\s*jobid: (\d+)", block, flags=re.M)
        if header and jobid:
            output = re.search(r"^\s*output: (.*)$", block, flags=re.M)
            jobs[int(jobid.group(1))] = {
                "rule": header.group(1),
                "output": [p.strip() for p in output.group(1).split(",")] if output else [],
            }
    return jobs


def finished_jobs(log: str) -> set[int]:
    return {int(j) for j in re.findall(r"Finished jobid: (\d+)", log)}


def marked_incomplete(workdir) -> set[str]:
    """Outputs Snakemake has marked incomplete (started, not finished): its file persistence
    keeps one file per output under .snakemake/incomplete, named by the path in URL-safe
    base64 (short paths: one name, no "@" chunks)."""
    folder = workdir / ".snakemake" / "incomplete"
    if not folder.is_dir():
        return set()
    names = (p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("@"))
    marked = set()
    for name in names:
        try:
            marked.add(urlsafe_b64decode(name.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return marked


#: The job to kill: it runs a few seconds, writes files only, and runs after other jobs.
VICTIM_RULE = "fig_completeness"
#: What the interrupted run builds (the quick run's invariant part: a few seconds of work)
TARGETS = ("table1", "fig_completeness")


def test_killed_run_resumes_without_losing_finished_jobs(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    log_path = tmp_path / "snakemake.log"
    # one job at a time, so that "the job in flight" is well defined
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), "--cores", "1", *TARGETS, *QUICK,
    ]
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill Snakemake and its jobs
        )
    try:
        # wait until the victim job runs (the jobs it depends on have finished by then)
        deadline = time.monotonic() + 300
        log = ""
        while time.monotonic() < deadline and process.poll() is None:
            log = log_path.read_text()
            started, finished = started_jobs(log), finished_jobs(log)
            running = [j for j in started if j not in finished]
            # Snakemake prints a job before it marks the job's outputs incomplete: wait for
            # the mark, else the kill may come before the job counts as started
            victims = [j for j in running if started[j]["rule"] == VICTIM_RULE]
            if finished and victims and set(started[victims[0]]["output"]) <= marked_incomplete(workdir):
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be interrupted:\n" + log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    log = log_path.read_text()
    started, finished = started_jobs(log), finished_jobs(log)
    killed = [j for j in started if j not in finished and started[j]["output"]]
    assert [started[j]["rule"] for j in killed] == [VICTIM_RULE], log
    done_outputs = {
        path: (workdir / path).stat().st_mtime_ns
        for j in finished for path in started[j]["output"] if (workdir / path).is_file()
    }
    assert done_outputs, log
    # A killed job may leave some of its outputs written and others not (each whole: the
    # scripts write through milad.io.atomic_output), or a truncated one if a script did not;
    # make sure there is one (the kill may come before the job wrote anything) so that the
    # incomplete-file check is exercised: Snakemake marked the job's outputs incomplete when
    # it started it.
    victim = workdir / started[killed[0]]["output"][0]
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_bytes(b"truncated")

    # the kill left Snakemake's lock behind; users remove it with --unlock
    assert (workdir / ".snakemake" / "locks").is_dir() and any((workdir / ".snakemake" / "locks").iterdir())
    unlock = snakemake(workdir, "--unlock", *QUICK)
    assert unlock.returncode == 0, output_of(unlock)

    # without --rerun-incomplete Snakemake refuses to trust the half-written file
    refused = snakemake(workdir, "--cores", "2", *TARGETS, *QUICK)
    assert refused.returncode != 0
    assert "--rerun-incomplete" in output_of(refused)
    assert str(victim.relative_to(workdir)) in output_of(refused)

    resumed = snakemake(workdir, "--cores", "2", "--rerun-incomplete", *TARGETS, *QUICK)
    assert resumed.returncode == 0, output_of(resumed)
    rerun_rules = job_counts(output_of(resumed))
    assert rerun_rules.get(VICTIM_RULE) == 1
    # every rule of these targets has one job: a finished one must not run again
    for j in finished:
        assert started[j]["rule"] not in rerun_rules, f"finished job {started[j]} ran again"
    for path, mtime in done_outputs.items():
        assert (workdir / path).stat().st_mtime_ns == mtime, f"{path} was rewritten"
    assert victim.read_bytes() != b"truncated"
    # and the resumed run is complete: nothing left to do
    check = snakemake(workdir, "--cores", "2", "--dry-run", *TARGETS, *QUICK)
    assert check.returncode == 0 and "Nothing to be done" in output_of(check), output_of(check)


@USES_QUICK_RUN
def test_deleting_one_output_reruns_only_that_job_and_its_dependents(tmp_path):
    workdir = copy_run(quick_run(), tmp_path / "run")
    before = result_files(workdir)
    deleted = f"{QUICK_RESULTS}/invariants/zernike_nmax7.comparison.json"
    (workdir / deleted).unlink()

    plan = snakemake(workdir, "--cores", "2", "--dry-run", *QUICK)
    assert plan.returncode == 0, output_of(plan)
    assert job_counts(plan.stdout) == {"compare_invariants": 1, "fig_completeness": 1, "all": 1}

    result = snakemake(workdir, "--cores", "2", *QUICK)
    assert result.returncode == 0, output_of(result)
    after = result_files(workdir)
    assert set(after) == set(before)
    rewritten = {path for path in before if after[path] != before[path]} | {deleted}
    assert rewritten == {deleted} | {
        f"{QUICK_RESULTS}/figures/fig_completeness{name}" for name in (".pdf", ".png", ".csv",
                                                                       "_chiral.csv")
    }


@USES_QUICK_RUN
def test_rerunning_a_finished_target_does_nothing(tmp_path):
    workdir = copy_run(quick_run(), tmp_path / "run")
    before = result_files(workdir)
    for target in ([], ["table1"], ["fig_completeness"], [f"{QUICK_RESULTS}/tables/table1.csv"]):
        result = snakemake(workdir, "--cores", "2", *target, *QUICK)
        assert result.returncode == 0, output_of(result)
        assert "Nothing to be done" in output_of(result), (target, output_of(result))
    assert result_files(workdir) == before
    # asking for the same target explicitly redoes just that rule
    forced = snakemake(workdir, "--cores", "2", "table1", "--forcerun", "table1", *QUICK)
    assert forced.returncode == 0, output_of(forced)
    assert job_counts(forced.stdout + forced.stderr) == {"table1": 1}
    after = result_files(workdir)
    changed = {path for path in before if after[path] != before[path]}
    assert changed == {f"{QUICK_RESULTS}/tables/table1.{ext}" for ext in ("csv", "md", "html")}
