#!/usr/bin/env bash
# Gateway cost, against nginx in the same run. An upstream (nginx, one process, a fixed JSON
# answer) is reached three ways: straight, through nginx's `proxy_pass` (no auth at all,
# pooled upstream connections) and through `keyward gateway` (a secret key in X-API-Key,
# verified, stripped, identity headers added). RUNS times in alternating order, wrk on each
# with the CPU time the proxy spent per request (from /proc/PID/stat); it prints the medians
# and their ratios, then the latency the gateway adds under an open-loop load of RATE req/s.
#   bench/gateway.sh            # DURATION=10 CONNS=32 KEYS=1000 RATE=5000 RUNS=3
# BASE_BIN=DIR also runs DIR's keyward gateway (an earlier build) beside this one, on the same
# data and upstream, measured in the same turns: the report adds the two builds' ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
KEYS=${KEYS:-1000}
RATE=${RATE:-5000}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_keyward
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$KEYS" --out "$work/keys.txt" 2>/dev/null
start_nginx upstream "location / { default_type application/json; return 200 '{\"ok\":true}'; }"
upstream_pid=$nginx_pid upstream=127.0.0.1:$nginx_port
start_nginx proxy "location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }" \
  "upstream up { server $upstream; keepalive 64; }"
proxy_pid=$nginx_pid proxy=127.0.0.1:$nginx_port
RUST_LOG=info "$BIN/keyward" gateway --upstream "http://$upstream" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --http-threads "$HTTP_THREADS" 2>"$work/gateway.log" &
gateway_pid=$!
pids+=("$gateway_pid")
gateway=$(wait_addr "$work/gateway.log" "keyward listening" "addr=")

targets=("gateway $gateway_pid http://$gateway/v1/items")
if [ -n "${BASE_BIN:-}" ]; then
  RUST_LOG=info "$BASE_BIN/keyward" gateway --upstream "http://$upstream" --data-dir "$work/data" \
    --listen 127.0.0.1:0 --http-threads "$HTTP_THREADS" 2>"$work/base.log" &
  base_pid=$!
  pids+=("$base_pid")
  base=$(wait_addr "$work/base.log" "keyward listening" "addr=")
  targets+=("base $base_pid http://$base/v1/items")
  "$BIN/kwbench" load --url "http://$base/v1/items" --keys "$work/keys.txt" --key-in-header >/dev/null
fi

# Warm the gateway's cache with every key, then measure them in turns.
"$BIN/kwbench" load --url "http://$gateway/v1/items" --keys "$work/keys.txt" --key-in-header >/dev/null
measure_in_turns "${targets[@]}" "nginx $proxy_pid http://$proxy/v1/items" \
  "direct $upstream_pid http://$upstream/v1/items" -- bench/verify.lua "$work/keys.txt" header

load() {
  "$BIN/kwbench" load --url "http://$1/v1/items" --keys "$work/keys.txt" --key-in-header \
    --rate "$RATE" --duration "$DURATION" --connections 16
}
direct_open=$(load "$upstream")
via_open=$(load "$gateway")
field() { echo "$1" | grep -Eo "\"$2\":[0-9.]+" | cut -d: -f2; }
cat <<REPORT

machine: $(nproc) cores, $(uname -r); wrk -t1 -c$CONNS -d${DURATION}s, $KEYS random keys, medians of $RUNS runs; keyward with $HTTP_THREADS serving thread(s)
                          gateway     nginx proxy  upstream alone   gateway/nginx
throughput (req/s)        $gateway_1      $nginx_1       $direct_1          $(ratio "$gateway_1" "$nginx_1")
proxy CPU per request (µs) $gateway_5        $nginx_5         (upstream $direct_5)     $(ratio "$gateway_5" "$nginx_5")
p50 / p99 at peak (µs)    $gateway_2 / $gateway_3   $nginx_2 / $nginx_3    $direct_2 / $direct_3
non-2xx answers           $gateway_bad           $nginx_bad            $direct_bad
open loop at $RATE req/s over 16 connections, straight to the upstream and via the gateway:
p50 (µs)                  $(field "$direct_open" p50_us) → $(field "$via_open" p50_us)  (added $(( $(field "$via_open" p50_us) - $(field "$direct_open" p50_us) )))
p99 (µs)                  $(field "$direct_open" p99_us) → $(field "$via_open" p99_us)  (added $(( $(field "$via_open" p99_us) - $(field "$direct_open" p99_us) )))
errors                    $(field "$direct_open" errors) / $(field "$via_open" errors)
REPORT
if [ -n "${BASE_BIN:-}" ]; then
  cat <<REPORT
this build ÷ BASE_BIN's gateway, same runs: throughput $(ratio "$gateway_1" "$base_1") ($gateway_1 / $base_1 req/s), CPU per request $(ratio "$gateway_5" "$base_5") ($gateway_5 / $base_5 µs); BASE_BIN's gateway ÷ nginx $(ratio "$base_1" "$nginx_1"), CPU $(ratio "$base_5" "$nginx_5")×
REPORT
fi
