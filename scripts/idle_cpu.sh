#!/usr/bin/env bash
# Idle cost of a real ring: starts N `rs2p node` processes on loopback
# (node 1 seeds, the others --connect to it, all --join), lets them settle,
# then prints the CPU time (utime + stime from /proc/PID/stat) they used
# over WINDOW seconds, in ms of CPU per second per node and for the ring.
# Usage: scripts/idle_cpu.sh RS2P_BINARY [N=8] [SETTLE=20] [WINDOW=60] [BASE_PORT=47100]
set -euo pipefail
bin=$1; n=${2:-8}; settle=${3:-20}; window=${4:-60}; base=${5:-47100}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in $(seq 1 "$n"); do
  port=$((base + i))
  if [ "$i" = 1 ]; then
    "$bin" node --bind 127.0.0.1:$port --join --log-level error >/dev/null 2>&1 &
  else
    "$bin" node --bind 127.0.0.1:$port --connect 127.0.0.1:$((base + 1)) --join --log-level error >/dev/null 2>&1 &
  fi
  pids+=($!)
  sleep 0.2
done
sleep "$settle"
ticks() { local t=0; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
hz=$(getconf CLK_TCK)
t0=$(ticks); sleep "$window"; t1=$(ticks)
awk -v d=$((t1 - t0)) -v hz="$hz" -v w="$window" -v n="$n" 'BEGIN {
  ms = d * 1000 / hz / w;
  printf "idle ring of %d nodes: %.2f ms CPU per s in all, %.3f ms per node per s (%d ticks over %d s)\n", n, ms, ms / n, d, w }'
