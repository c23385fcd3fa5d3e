#!/usr/bin/env bash
# The million-key stall check (BENCHMARKS.md, "A ring holding a million
# keys"): starts N `rs2p node --join` processes on loopback (node 1 seeds,
# the others --connect to it), imports KEYS keys of 100 bytes, then reads 40
# random keys through random nodes every 20 s until UNTIL seconds after the
# start, past every node's first replica refresh and anti-entropy pass
# (drawn between 225 and 375 s). Before the fix those passes held each
# node's lock long enough for keepalives to go unanswered and links to close.
# Prints one line per round and the links closed; exits 1 on a wrong or
# missing value, a dead node or a closed link.
# Usage: scripts/stall_check.sh RS2P_BINARY [KEYS=1000000] [UNTIL=480] [N=8] [BASE_PORT=47000]
set -uo pipefail
bin=$1; keys=${2:-1000000}; until=${3:-480}; n=${4:-8}; base=${5:-47000}
work="$(mktemp -d "${TMPDIR:-/tmp}/rs2p-stall.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start=$(date +%s)
for i in $(seq 1 "$n"); do
  port=$((base + i))
  if [ "$i" = 1 ]; then
    "$bin" node --bind 127.0.0.1:$port --join >/dev/null 2>"$work/node$i.log" &
  else
    "$bin" node --bind 127.0.0.1:$port --connect 127.0.0.1:$((base + 1)) --join >/dev/null 2>"$work/node$i.log" &
  fi
  pids+=($!)
  sleep 0.2
done
# Every node listening (bounded: 30 s), then its status answering.
for i in $(seq 1 "$n"); do
  port=$((base + i)); tries=0
  until "$bin" status --peer 127.0.0.1:$port --timeout 2 >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then echo "node $i on port $port never answered"; exit 1; fi
    sleep 1
  done
done
value=$(printf 'v%.0s' $(seq 100))
python3 -c "
import sys
w = sys.stdout.write
for i in range($keys): w('stall-key-%010d\t$value\n' % i)
" > "$work/keys.tsv"
if ! "$bin" import --peer 127.0.0.1:$((base + 3)) "$work/keys.tsv" > "$work/import.out" 2>&1; then
  echo "import failed: $(tail -3 "$work/import.out")"; exit 1
fi
echo "t=$(( $(date +%s) - start )) s: $(tail -1 "$work/import.out")"
bad_total=0
while [ $(( $(date +%s) - start )) -lt "$until" ]; do
  ok=0; bad=0
  for k in $(python3 -c "import random; print(' '.join('stall-key-%010d' % random.randrange($keys) for _ in range(40)))"); do
    port=$((base + RANDOM % n + 1))
    if [ "$("$bin" get "$k" --peer 127.0.0.1:$port --timeout 5 2>/dev/null)" = "$value" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  bad_total=$((bad_total + bad))
  echo "t=$(( $(date +%s) - start )) s: $ok of 40 gets correct"
  sleep 20
done
dead=0
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || dead=$((dead + 1)); done
closed=$(cat "$work"/node*.log | grep -c "closing connection")
echo "wrong or missing gets: $bad_total; nodes dead: $dead; links closed: $closed"
[ "$bad_total" = 0 ] && [ "$dead" = 0 ] && [ "$closed" = 0 ]
