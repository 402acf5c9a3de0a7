#!/usr/bin/env bash
# Stand-in "scheduler" for Snakemake's generic cluster executor (snakemake-executor-plugin-
# cluster-generic), used by tests/test_cluster.py to exercise cluster submission without a
# real scheduler. It runs the job script in the background, detached from Snakemake, and
# prints a job id; generic_status.sh answers running / success / failed for that id.
#
#   snakemake --executor cluster-generic \
#       --cluster-generic-submit-cmd workflow/cluster/generic_submit.sh \
#       --cluster-generic-status-cmd workflow/cluster/generic_status.sh --jobs 2 ...
#
# Job records (the job script's output and its exit status) go to
# $MILAD_FAKE_CLUSTER_DIR (default .snakemake/fake_cluster in the working directory).
set -euo pipefail
jobscript=${!#}
dir=${MILAD_FAKE_CLUSTER_DIR:-.snakemake/fake_cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
id="fake$(date +%s%N)$$"
# setsid: the job survives the submitting shell, as a batch job would
setsid bash -c 'bash "$1" >"$2/$3.out" 2>&1; echo $? >"$2/$3.exit.tmp"; mv "$2/$3.exit.tmp" "$2/$3.exit"' \
    _ "$jobscript" "$dir" "$id" </dev/null >/dev/null 2>&1 &
echo "$!" >"$dir/$id.pid"
echo "$id"
