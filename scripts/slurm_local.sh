#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's packages (slurm-wlm, munge), for testing
# `interp study run SPEC --executor slurm` against a real scheduler (tests/test_study_slurm.py).
#
#   bash scripts/slurm_local.sh install     # apt-get install slurm-wlm munge (root; once per machine)
#   eval "$(bash scripts/slurm_local.sh start)"   # munged + slurmctld + slurmd; prints `export SLURM_CONF=...`
#   bash scripts/slurm_local.sh stop
#
# No accounting daemon: the executor plugin is told to ask `squeue` (--slurm-status-command squeue),
# which is reliable here because MinJobAge keeps finished jobs visible for 10 minutes. A real
# cluster normally has slurmdbd and sacct; nothing else differs (docs/studies.md).
set -euo pipefail
DIR="${SLURM_LOCAL_DIR:-/tmp/interp-slurm}"
CONF="$DIR/slurm.conf"
NODE="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"

case "${1:-}" in
  install)
    command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge) >/dev/null
    ;;
  start)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$CONF" <<EOF
ClusterName=interp-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=600
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    # cgroups are not used (proctrack/linuxproc, task/none): no cgroup.conf
    rm -f "$DIR/cgroup.conf"
    # the job steps' srun reads the default path (a batch job does not always carry SLURM_CONF)
    mkdir -p /etc/slurm
    [ -e /etc/slurm/slurm.conf ] || ln -s "$CONF" /etc/slurm/slurm.conf
    pgrep -x munged >/dev/null || { mkdir -p /run/munge && chown munge:munge /run/munge; \
      su -s /bin/sh munge -c "/usr/sbin/munged --force" 2>/dev/null || /usr/sbin/munged --force; }
    pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld -f "$CONF"
    pgrep -x slurmd >/dev/null || /usr/sbin/slurmd -f "$CONF"
    for _ in $(seq 1 30); do
      if SLURM_CONF="$CONF" sinfo -h -o %t 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; then
        echo "export SLURM_CONF=$CONF"
        exit 0
      fi
      sleep 1
    done
    echo "slurm did not come up; see $DIR/log" >&2
    exit 1
    ;;
  stop)
    pkill -x slurmd || true
    pkill -x slurmctld || true
    for _ in $(seq 1 20); do { pgrep -x slurmd || pgrep -x slurmctld; } >/dev/null || break; sleep 0.5; done
    [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$CONF" ] && rm -f /etc/slurm/slurm.conf
    ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
