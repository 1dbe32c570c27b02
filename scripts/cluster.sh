#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the cluster tests and for trying the Slurm path:
#   scripts/cluster.sh up      install (Debian's slurm-wlm + munge, as root) and start munged, slurmctld, slurmd
#   scripts/cluster.sh down    stop them by the PIDs `up` recorded
#   scripts/cluster.sh status  sinfo, or why there is no cluster
# (`make cluster-up` / `make cluster-down`.) One partition, `debug`, with this machine's CPUs and memory; no
# systemd, cgroups or accounting. Its state, logs and PIDs are in $GRADLAB_SLURM_DIR (default /tmp/gradlab-slurm).
# /etc/slurm/slurm.conf is written only where there is none or it is one of ours: a real cluster's is never touched.
set -euo pipefail
DIR=${GRADLAB_SLURM_DIR:-/tmp/gradlab-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by gradlab scripts/cluster.sh"
PARTITION=debug

die() { echo "cluster: $*" >&2; exit 1; }

install() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null && return
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get here (install slurm-wlm, munge)"
  echo "cluster: installing slurmctld slurmd slurm-client munge (Debian's packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and is not gradlab's: this machine has a Slurm of its own (not touched)"
  fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/^MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # MB; the rest for the OS
  mkdir -p "$DIR"/{state,spool,log} /etc/slurm
  cat > "$CONF.tmp" <<EOF
$MARK (single node, for tests)
ClusterName=gradlab
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no systemd, cgroups or accounting here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
# a job that names no memory gets its CPUs' share, not the whole node (which would leave the other CPUs idle)
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((mem / cpus))
EOF
  mv "$CONF.tmp" "$CONF"
}

running() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

up() {
  install
  write_conf
  # munge: its socket folder (no systemd to make it), then the daemon as its own user
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || true; chown munge:munge /etc/munge/munge.key; }
  if ! running munged; then
    runuser -u munge -- munged --force
    for _ in $(seq 1 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$DIR/munged.pid"
  fi
  running slurmctld || slurmctld
  running slurmd || slurmd
  # ready when the node takes jobs
  for _ in $(seq 1 60); do
    state=$(sinfo -h -p "$PARTITION" -o %t 2>/dev/null || true)
    case "$state" in idle*|mix*|alloc*) echo "cluster: up ($(sinfo -h -p $PARTITION -o '%P %D node, %c CPUs, %m MB, %t'))"; return ;; esac
    sleep 0.5
  done
  die "the node did not become idle within 30 s (state '${state:-none}'); logs in $DIR/log"
}

down() {
  local pid
  for d in slurmd slurmctld munged; do
    if running "$d"; then
      pid=$(cat "$DIR/$d.pid")
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$DIR/$d.pid"
  done
  # the jobs slurmd started are its children's: none outlives it on a test machine
  pkill -f slurmstepd 2>/dev/null || true
  rm -rf "$DIR/state" "$DIR/spool"  # a later `up` starts with an empty queue
  echo "cluster: down"
}

status() {
  command -v sinfo >/dev/null || die "no Slurm client (scripts/cluster.sh up installs one)"
  sinfo -h -o '%P %D node(s), %c CPUs, %m MB, %t' || die "no controller answers (scripts/cluster.sh up)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status (got '${1:-}')" ;;
esac
