#!/usr/bin/env bash
# Two builds of keyward served at once and measured in alternating turns, so the machine's
# noise falls on both alike: the verify-throughput ratio of the current tree to a baseline.
#   bench/compare.sh BASELINE_DIR          # a dir holding a baseline's keyward and kwbench
#   ROUNDS=6 DURATION=5 KEYS=10000         # defaults
# Build a baseline with e.g.:  git worktree add /tmp/base REV && (cd /tmp/base &&
#   cargo build --release -p keyward-cli -p kwbench) && cp /tmp/base/target/release/{keyward,kwbench} DIR
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/compare.sh BASELINE_DIR}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5}
KEYS=${KEYS:-10000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p keyward-cli -p kwbench
now=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# Starts a build's server on a fresh data dir, seeds KEYS keys and warms its cache.
start() {
  local name=$1 bin=$2
  RUST_LOG=info "$bin/keyward" serve --data-dir "$work/$name" --listen 127.0.0.1:0 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 300); do grep -q "keyward listening" "$work/$name.log" && break; sleep 0.1; done
  local addr mk
  addr=$(grep "keyward listening" "$work/$name.log" | sed -E 's/.*addr=([0-9.:]+).*/\1/')
  mk=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$work/$name.log" | head -1)
  "$now/kwbench" seed --server "http://$addr" --token "$mk" --count "$KEYS" --out "$work/$name.keys" >/dev/null 2>&1
  "$now/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/$name.keys" --connections 8 >/dev/null
  echo "$name $addr" >>"$work/servers"
}
start baseline "$base"
start current "$now"
# The order alternates (baseline first, then current first) so drift in the machine's speed
# during the run weighs on both alike.
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order=$(cat "$work/servers"); else order=$(tac "$work/servers"); fi
  while read -r name addr; do
    rps=$(wrk -t1 -c32 -d"${DURATION}s" -s bench/verify.lua "http://$addr/v1/keys/verify" -- "$work/$name.keys" |
      awk '/Requests\/sec/ { print $2 }')
    echo "round $round $name $rps" | tee -a "$work/results"
  done <<<"$order"
done
awk '{ s[$3] += $4; n[$3]++ } END {
  b = s["baseline"] / n["baseline"]; c = s["current"] / n["current"];
  printf "mean req/s: baseline %.0f, current %.0f; current / baseline = %.2f\n", b, c, c / b }' "$work/results"
