#!/usr/bin/env bash
# A real, one-node Slurm cluster on this machine, bound to loopback, for testing the SLURM
# execution profile (profiles/slurm/) with the actual Slurm daemons and client commands.
#
#   workflow/cluster/slurm_local.sh start    install Slurm and munge if absent, write the
#                                            configuration, start munged, slurmctld and slurmd,
#                                            wait until the node accepts jobs
#   workflow/cluster/slurm_local.sh stop     stop the daemons this script started
#   workflow/cluster/slurm_local.sh status   sinfo / squeue of the running cluster
#   workflow/cluster/slurm_local.sh env      print `export SLURM_CONF=...` for the clients
#
# Everything (configuration, state, spool, logs, pid files) lives in $MILAD_SLURM_DIR
# (default /tmp/milad-slurm). The configuration is also linked to Slurm's default location
# /etc/slurm/slurm.conf, because the `srun` that Snakemake's job-step executor runs inside
# each job drops SLURM_CONF from its environment; an /etc/slurm/slurm.conf that this script
# did not write is never replaced (the script stops with an error instead), and `stop`
# removes the link again.
#
# Needs root (it installs Debian packages and runs the daemons as root). There is no
# accounting database (AccountingStorageType=accounting_storage/none), so `sacct` does not
# work; finished jobs stay visible to `squeue` for MinJobAge = 3600 s, which is what the
# SLURM executor's `status_command: squeue` needs.
#
# Every step that waits has a time limit: a failed installation or a daemon that does not
# come up ends the script with exit status 1 and a message saying what failed (plus the
# tail of the daemon's log), never a hang.

set -euo pipefail

DIR=${MILAD_SLURM_DIR:-/tmp/milad-slurm}
CONF="$DIR/slurm.conf"
APT_TIMEOUT=${MILAD_SLURM_APT_TIMEOUT:-900}
START_TIMEOUT=${MILAD_SLURM_START_TIMEOUT:-60}

say() { echo "slurm_local: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, runs slurmctld/slurmd); current user: $(id -un)"
}

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 &&
        command -v sbatch >/dev/null 2>&1 && command -v squeue >/dev/null 2>&1 &&
        command -v munged >/dev/null 2>&1
}

install_packages() {
    if have_slurm; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "Slurm is not installed and apt-get is not available: install slurm-wlm and munge by hand"
    say "installing Debian packages slurm-wlm and munge (apt-get, limit ${APT_TIMEOUT}s) ..."
    local log="$DIR/apt.log"
    export DEBIAN_FRONTEND=noninteractive
    # keep the package scripts from starting the daemons through init scripts (no init here
    # anyway); removed again right after the installation if this script created it
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    local ok=0
    if timeout "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=120 update >"$log" 2>&1 &&
        timeout "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends \
            slurm-wlm munge >>"$log" 2>&1; then
        ok=1
    fi
    [ "$created_policy" -eq 1 ] && rm -f "$policy"
    if [ "$ok" -ne 1 ] || ! have_slurm; then
        tail -n 20 "$log" >&2 || true
        die "could not install slurm-wlm and munge with apt-get (full log: $log)"
    fi
    say "installed $(dpkg-query -W -f='slurm-wlm ${Version}' slurm-wlm 2>/dev/null)"
}

munge_works() {
    command -v munge >/dev/null 2>&1 && munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

start_munge() {
    if munge_works; then
        say "munged already running"
        return 0
    fi
    local key=/etc/munge/munge.key
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    if [ ! -s "$key" ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$key" --force
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
    fi
    local user=root
    if id munge >/dev/null 2>&1; then
        user=munge
    fi
    chown "$user": /etc/munge "$key" /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    chmod 0400 "$key"
    if [ "$user" = munge ]; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    touch "$DIR/started_munged"
    local i
    for i in $(seq 1 "$START_TIMEOUT"); do
        munge_works && { say "munged started"; return 0; }
        sleep 1
    done
    tail -n 20 /var/log/munge/munged.log >&2 || true
    die "munged did not start within ${START_TIMEOUT}s"
}

write_config() {
    local host cpus mem_total_mb real_mem
    host=$(hostname -s)
    cpus=$(nproc)
    [ "$cpus" -gt 2 ] && cpus=2
    mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # leave 1 GiB to the operating system and the daemons; slurmd drains a node that has
    # less memory than RealMemory says
    real_mem=$((mem_total_mb - 1024))
    [ "$real_mem" -lt 1024 ] && real_mem=$mem_total_mb
    mkdir -p "$DIR/log" "$DIR/state" "$DIR/spool"
    cat >"$CONF" <<EOF
# One-node Slurm cluster on loopback, written by workflow/cluster/slurm_local.sh.
ClusterName=milad
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${MILAD_SLURMCTLD_PORT:-6817}
SlurmdPort=${MILAD_SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
# finished jobs stay in slurmctld (and visible to squeue) for an hour: no slurmdbd here
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${host} NodeAddr=127.0.0.1 NodeHostname=${host} CPUs=${cpus} RealMemory=${real_mem} State=UNKNOWN
PartitionName=main Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF (node ${host}, CPUs=${cpus}, RealMemory=${real_mem} MB)"
    link_default_config
}

# /etc/slurm/slurm.conf -> $CONF, unless a configuration of another cluster is there
link_default_config() {
    local target=/etc/slurm/slurm.conf
    if [ -L "$target" ] && [ "$(readlink "$target")" = "$CONF" ]; then
        return 0
    fi
    if [ -e "$target" ] || [ -L "$target" ]; then
        if ! grep -q "written by workflow/cluster/slurm_local.sh" "$target" 2>/dev/null; then
            die "$target exists and was not written by this script: refusing to replace the configuration of another Slurm cluster"
        fi
        rm -f "$target"
    fi
    mkdir -p /etc/slurm
    ln -s "$CONF" "$target"
}

unlink_default_config() {
    local target=/etc/slurm/slurm.conf
    if [ -L "$target" ] && [ "$(readlink "$target")" = "$CONF" ]; then
        rm -f "$target"
    fi
}

pid_alive() {
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_state() {
    SLURM_CONF="$CONF" timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1
}

# refuse to start a second cluster next to a running one (before touching any file)
preflight() {
    if pid_alive "$DIR/slurmctld.pid" || pid_alive "$DIR/slurmd.pid"; then
        die "a cluster from $DIR is already running: run '$0 stop' first"
    fi
    local port
    for port in "${MILAD_SLURMCTLD_PORT:-6817}" "${MILAD_SLURMD_PORT:-6818}"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use (another slurmctld/slurmd?): stop it first, e.g. MILAD_SLURM_DIR=<its folder> $0 stop"
        fi
    done
}

start_daemons() {
    export SLURM_CONF="$CONF"
    # -c: start from a clean job state (no jobs of an earlier run)
    slurmctld -c -f "$CONF" || die "slurmctld failed to start; log: $DIR/log/slurmctld.log"
    slurmd -f "$CONF" || die "slurmd failed to start; log: $DIR/log/slurmd.log"
    local i state=""
    for i in $(seq 1 "$START_TIMEOUT"); do
        state=$(node_state || true)
        case "$state" in
            idle*|mixed*|allocated*)
                say "cluster up: node $(hostname -s) is $state"
                return 0 ;;
            down*|drain*)
                # a fresh node comes up as down until slurmd registers; resume it
                SLURM_CONF="$CONF" scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    say "node state after ${START_TIMEOUT}s: '${state:-no answer}'"
    tail -n 15 "$DIR/log/slurmctld.log" >&2 || true
    tail -n 15 "$DIR/log/slurmd.log" >&2 || true
    stop_daemons || true
    die "the Slurm node did not become idle within ${START_TIMEOUT}s"
}

stop_pidfile() {
    local file=$1 name=$2 pid i
    pid_alive "$file" || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || { say "stopped $name (pid $pid)"; return 0; }
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    say "killed $name (pid $pid)"
}

stop_daemons() {
    # cancel what is left, then stop the daemons by the pids they wrote
    if pid_alive "$DIR/slurmctld.pid"; then
        SLURM_CONF="$CONF" timeout 10 scancel --full --quiet --user "$(id -un)" >/dev/null 2>&1 || true
    fi
    stop_pidfile "$DIR/slurmd.pid" slurmd
    stop_pidfile "$DIR/slurmctld.pid" slurmctld
    if [ -e "$DIR/started_munged" ]; then
        stop_pidfile /run/munge/munged.pid munged
        rm -f "$DIR/started_munged"
    fi
    unlink_default_config
}

case "${1:-}" in
    start)
        need_root
        mkdir -p "$DIR"
        install_packages
        preflight
        start_munge
        write_config
        start_daemons
        ;;
    stop)
        stop_daemons
        ;;
    status)
        export SLURM_CONF="$CONF"
        sinfo && squeue --states=all
        ;;
    env)
        echo "export SLURM_CONF=$CONF"
        ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
