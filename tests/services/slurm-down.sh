#!/bin/bash
# Carried from the group's proven CI scripts.
# Stop what slurm-up.sh started -- by PID file only (never by process name).
STATE=${LABKIT_SERVICES_DIR:-/tmp/labkit-services}
stop_pidfile() {  # name pidfile
  local name=$1 pf=$2 pid
  [ -s "$pf" ] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null && grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pf"
}
stop_pidfile slurmd    /run/slurmd.pid
stop_pidfile slurmctld /run/slurmctld.pid
stop_pidfile slurmdbd  /run/slurmdbd.pid
stop_pidfile mariadbd  "$STATE/mariadb/mariadbd.pid"
stop_pidfile munged    /run/munge/munged.pid
exit 0
