#!/usr/bin/env bash
# Verification load benchmark. In one run it measures the release server (SQLite, KEYS keys)
# and a minimal axum endpoint sending the same answer (the ceiling on this machine), then the
# latency of both at half of the server's peak, then keys with a rate limit and credits
# (counted on the node, then shared through Redis at REDIS_URL, default the local one) as
# ratios to plain verification, then the memory of the server with MEMKEYS keys cached.
# Figures are ratios against the ceiling; see docs/BENCHMARKS.md.
#   bench/verify.sh            # DURATION=10 CONNS=32 KEYS=10000 MEMKEYS=100000
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
KEYS=${KEYS:-10000}
MEMKEYS=${MEMKEYS:-100000}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

# wrk's "Requests/sec" and 50%/99% latencies (in µs).
wrk_run() {
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s bench/verify.lua "$1" -- "$work/${keys_file:-keys.txt}" >"$work/wrk.txt"
  awk '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, bad }' "$work/wrk.txt"
}

start_keyward
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$KEYS" --out "$work/keys.txt"

# A real answer, byte for byte, for the ceiling to send.
curl -s -X POST "http://$addr/v1/keys/verify" -H 'content-type: application/json' \
  -d "{\"key\":\"$(head -1 "$work/keys.txt")\"}" >"$work/answer.json"
"$BIN/kwbench" ceiling --listen 127.0.0.1:0 --body-file "$work/answer.json" 2>"$work/ceiling.log" &
pids+=($!)
ceiling=$(wait_addr "$work/ceiling.log" "ceiling listening" "on")

# Warm the cache with every key once, then measure both at full load.
"$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/keys.txt" --connections 8 >/dev/null
read -r k_rps k_p50 k_p99 k_bad < <(wrk_run "http://$addr/v1/keys/verify")
read -r c_rps c_p50 c_p99 c_bad < <(wrk_run "http://$ceiling/v1/keys/verify")

# Both at half of the server's peak, open loop.
half=$((k_rps / 2))
kh=$("$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/keys.txt" --rate "$half" --duration "$DURATION" --connections "$CONNS")
ch=$("$BIN/kwbench" load --url "http://$ceiling/v1/keys/verify" --keys "$work/keys.txt" --rate "$half" --duration "$DURATION" --connections "$CONNS")
field() { echo "$1" | grep -Eo "\"$2\":[0-9.]+" | cut -d: -f2; }


rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"; }
rss_small=$(rss)
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$((MEMKEYS - KEYS))" --out "$work/keys.txt"
"$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/keys.txt" --connections 8 >"$work/warm.json"
rss_big=$(rss)


# Keys with a rate limit (never reached: 1,000,000 a second each) and credits, on a fresh
# server like the first (KEYS keys): counted on the node, then shared through Redis at
# REDIS_URL (default the local one). Each as a ratio to the plain run above.
limited_run() {
  local dir=$work/data-$1; shift
  RUST_LOG=info "$BIN/keyward" serve --data-dir "$dir" --listen 127.0.0.1:0 "$@" 2>"$dir.log" &
  local pid=$!
  pids+=("$pid")
  local a m
  a=$(wait_addr "$dir.log" "keyward listening" "addr=")
  m=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$dir.log" | head -1)
  "$BIN/kwbench" seed --server "http://$a" --token "$m" --count "$KEYS" --out "$work/limited.txt" \
    --ratelimit 1000000/1s --credits 1000000000 >&2
  keys_file=limited.txt
  "$BIN/kwbench" load --url "http://$a/v1/keys/verify" --keys "$work/limited.txt" --connections 8 >/dev/null
  wrk_run "http://$a/v1/keys/verify"
  keys_file=keys.txt
  rm -f "$work/limited.txt"
  kill "$pid"
}
kill "$server_pid"
read -r l_rps l_p50 l_p99 l_bad < <(limited_run local)
redis=${REDIS_URL:-redis://127.0.0.1:6379}
r_rps=""
if command -v redis-cli >/dev/null && redis-cli -u "$redis" ping >/dev/null 2>&1; then
  read -r r_rps r_p50 r_p99 r_bad < <(limited_run redis --redis-url "$redis")
fi

cat <<REPORT

machine: $(nproc) cores, $(uname -r); wrk -t1 -c$CONNS -d${DURATION}s; answer $(wc -c <"$work/answer.json") bytes
                          verify      ceiling     ratio
peak throughput (req/s)   $k_rps      $c_rps      $(awk "BEGIN { printf \"%.2f\", $k_rps / $c_rps }")
p50 at peak (µs)          $k_p50      $c_p50
p99 at peak (µs)          $k_p99      $c_p99
non-2xx answers           ${k_bad:-0}          ${c_bad:-0}
at $half req/s (half of verify's peak), open loop:
p50 (µs)                  $(field "$kh" p50_us)      $(field "$ch" p50_us)
p99 (µs)                  $(field "$kh" p99_us)      $(field "$ch" p99_us)
errors                    $(field "$kh" errors)          $(field "$ch" errors)
with limits and credits, local   $l_rps      (ratio to plain verify $(awk "BEGIN { printf \"%.2f\", $l_rps / $k_rps }"); p50 $l_p50 µs, p99 $l_p99 µs, non-2xx ${l_bad:-0})
with limits and credits, Redis   ${r_rps:-skipped (no Redis)}      $( [ -n "$r_rps" ] && awk "BEGIN { printf \"(ratio to plain verify %.2f)\", $r_rps / $k_rps }"; [ -n "$r_rps" ] && echo "; p50 $r_p50 µs, p99 $r_p99 µs, non-2xx ${r_bad:-0}")
server RSS: $rss_small MB with $KEYS keys cached, $rss_big MB with $MEMKEYS keys cached (warm pass: $(cat "$work/warm.json"))
REPORT
