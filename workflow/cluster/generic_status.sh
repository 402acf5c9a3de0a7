#!/usr/bin/env bash
# Status of a job submitted with generic_submit.sh: prints running, success or failed.
set -euo pipefail
id=$1
dir=${MILAD_FAKE_CLUSTER_DIR:-.snakemake/fake_cluster}
if [ -f "$dir/$id.exit" ]; then
    if [ "$(cat "$dir/$id.exit")" = 0 ]; then echo success; else echo failed; fi
elif [ -f "$dir/$id.pid" ] && kill -0 "$(cat "$dir/$id.pid")" 2>/dev/null; then
    echo running
elif [ -f "$dir/$id.pid" ]; then
    # the job process is gone without an exit status (killed)
    sleep 1
    if [ -f "$dir/$id.exit" ]; then
        if [ "$(cat "$dir/$id.exit")" = 0 ]; then echo success; else echo failed; fi
    else
        echo failed
    fi
else
    echo failed
fi
