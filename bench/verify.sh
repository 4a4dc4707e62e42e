#!/usr/bin/env bash
# Verification load benchmark, against nginx in the same run. It starts the release server
# (SQLite, KEYS keys) and nginx (one process) answering the same bytes with `return 200`, and
# the minimal axum endpoint of `kwbench ceiling`; then, RUNS times in alternating order, wrk on
# each, with the CPU time each server process spent per request (from /proc/PID/stat). It
# prints the medians and their ratios; then the latency of both at half of the server's peak
# (open loop), keys with a rate limit and credits (counted on the node, then through Redis at
# REDIS_URL, default the local one) as ratios to plain verification, and the memory per cached
# key from MEMKEYS keys. See docs/BENCHMARKS.md.
#   bench/verify.sh            # DURATION=10 CONNS=32 KEYS=1000 MEMKEYS=100000 RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
KEYS=${KEYS:-1000}
MEMKEYS=${MEMKEYS:-100000}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_keyward
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$KEYS" --out "$work/keys.txt" 2>/dev/null

# A real answer, byte for byte, for nginx and the axum ceiling to send.
curl -s -X POST "http://$addr/v1/keys/verify" -H 'content-type: application/json' \
  -d "{\"key\":\"$(head -1 "$work/keys.txt")\"}" >"$work/answer.json"
if grep -q "['\$\\\\]" "$work/answer.json"; then echo "the answer has a character nginx would read" >&2; exit 1; fi
start_nginx nginx "location = /v1/keys/verify { default_type application/json; return 200 '$(cat "$work/answer.json")'; }"
"$BIN/kwbench" ceiling --listen 127.0.0.1:0 --body-file "$work/answer.json" 2>"$work/ceiling.log" &
ceiling_pid=$!
pids+=("$ceiling_pid")
ceiling=$(wait_addr "$work/ceiling.log" "ceiling listening" "on")

# Servers like the first whose KEYS keys have a rate limit (never reached: 1,000,000 a second)
# and credits, counted on the node and through Redis; and a limit alone through Redis, `exact`
# (every check a script run) and `fast` (leases). limited NAME "SEED ARGUMENTS" [SERVE
# ARGUMENTS…] starts one, seeds and warms it, and adds it to `limited_targets`.
limited_targets=()
limited() {
  local name=$1 seed=$2 dir=$work/data-$1 a m; shift 2
  RUST_LOG=info "$BIN/keyward" serve --data-dir "$dir" --listen 127.0.0.1:0 --http-threads "$HTTP_THREADS" "$@" \
    2>"$dir.log" &
  local pid=$!
  pids+=("$pid")
  a=$(wait_addr "$dir.log" "keyward listening" "addr=")
  m=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$dir.log" | head -1)
  # shellcheck disable=SC2086
  "$BIN/kwbench" seed --server "http://$a" --token "$m" --count "$KEYS" --out "$work/$name.txt" $seed 2>/dev/null
  "$BIN/kwbench" load --url "http://$a/v1/keys/verify" --keys "$work/$name.txt" --connections 8 >/dev/null
  limited_targets+=("$name $pid http://$a/v1/keys/verify $work/$name.txt")
}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
both="--ratelimit 1000000/1s --credits 1000000000"
limited local "$both"
have_redis=""
if command -v redis-cli >/dev/null && redis-cli -u "$redis" ping >/dev/null 2>&1; then
  have_redis=1
  export REDIS_CPU_URL=$redis
  limited redis "$both" --redis-url "$redis"
  limited exact "--ratelimit 1000000/1s" --redis-url "$redis"
  limited fast "--ratelimit 1000000/1s:fast" --redis-url "$redis"
fi

# Warm the cache with every key once, then measure all in turns.
"$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/keys.txt" --connections 8 >/dev/null
measure_in_turns "keyward $server_pid http://$addr/v1/keys/verify" \
  "nginx $nginx_pid http://127.0.0.1:$nginx_port/v1/keys/verify" "axum $ceiling_pid http://$ceiling/v1/keys/verify" \
  "${limited_targets[@]}" -- bench/verify.lua "$work/keys.txt"
for t in "${limited_targets[@]}"; do read -r _ pid _ <<<"$t"; kill "$pid"; done

# Both at half of the server's peak, open loop.
half=$((${keyward_1%.*} / 2))
kh=$("$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/keys.txt" --rate "$half" --duration "$DURATION" --connections "$CONNS")
nh=$("$BIN/kwbench" load --url "http://127.0.0.1:$nginx_port/v1/keys/verify" --keys "$work/keys.txt" --rate "$half" --duration "$DURATION" --connections "$CONNS")
field() { echo "$1" | grep -Eo "\"$2\":[0-9.]+" | cut -d: -f2; }
kill "$nginx_pid" "$ceiling_pid"

# Memory: RSS with KEYS keys cached, then with MEMKEYS, each read after a usage flush (the
# counts buffered between flushes are not the cache).
rss() { awk '/VmRSS/ { print $2 }' "/proc/$server_pid/status"; }
sleep 5
rss_small=$(rss)
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$((MEMKEYS - KEYS))" --out "$work/keys.txt" 2>/dev/null
"$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/keys.txt" --connections 8 >"$work/warm.json"
rss_warm=$(rss)
sleep 5
rss_big=$(rss)
per_key=$(awk -v a="$rss_small" -v b="$rss_big" -v n=$((MEMKEYS - KEYS)) 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')

# One report line for the limited server NAME ($2), under the label $1.
limited_line() {
  if [ "$2" != local ] && [ -z "$have_redis" ]; then echo "$1 skipped (no Redis)"; return; fi
  local rps p50 p99 bad cpu rcpu
  eval "rps=\$${2}_1 p50=\$${2}_2 p99=\$${2}_3 bad=\$${2}_bad cpu=\$${2}_5 rcpu=\$${2}_6"
  echo "$1 $rps req/s, $cpu µs CPU/request$([ "$2" != local ] && [ "$rcpu" != - ] && echo " + Redis $rcpu µs") (ratio to plain verify $(ratio "$rps" "$keyward_1"); p50 $p50 µs, p99 $p99 µs, non-2xx $bad)"
}

cat <<REPORT

machine: $(nproc) cores, $(uname -r); wrk -t1 -c$CONNS -d${DURATION}s, $KEYS random keys, medians of $RUNS runs; keyward with $HTTP_THREADS serving thread(s); answer $(wc -c <"$work/answer.json") bytes
                          keyward     nginx       axum        keyward/nginx  keyward/axum
throughput (req/s)        $keyward_1      $nginx_1      $axum_1      $(ratio "$keyward_1" "$nginx_1")           $(ratio "$keyward_1" "$axum_1")
CPU per request (µs)      $keyward_5        $nginx_5        $axum_5        $(ratio "$keyward_5" "$nginx_5")           $(ratio "$keyward_5" "$axum_5")
p50 / p99 at peak (µs)    $keyward_2 / $keyward_3   $nginx_2 / $nginx_3   $axum_2 / $axum_3
non-2xx answers           $keyward_bad           $nginx_bad           $axum_bad
at $half req/s (half of keyward's peak), open loop, keyward / nginx:
p50 (µs)                  $(field "$kh" p50_us) / $(field "$nh" p50_us)
p99 (µs)                  $(field "$kh" p99_us) / $(field "$nh" p99_us)
errors                    $(field "$kh" errors) / $(field "$nh" errors)
same rounds, keys with a rate limit (1,000,000/s, never reached):
$(limited_line "with limits and credits, local  " local)
$(limited_line "with limits and credits, Redis  " redis)
$(limited_line "with a limit, Redis, exact      " exact)
$(limited_line "with a limit, Redis, fast       " fast)
server RSS: $((rss_small / 1024)) MB with $KEYS keys cached, $((rss_big / 1024)) MB with $MEMKEYS (right after the warm pass, before a flush: $((rss_warm / 1024)) MB)
RSS per cached key: $per_key bytes ((RSS with $MEMKEYS − RSS with $KEYS) / $((MEMKEYS - KEYS)); warm pass: $(cat "$work/warm.json"))
REPORT
