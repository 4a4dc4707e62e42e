#!/usr/bin/env bash
# Gateway overhead: the same open-loop load (RATE req/s, secret key in X-API-Key) sent straight
# to an upstream and through `keyward gateway` to it, in one run; reports the added latency.
#   bench/gateway.sh            # RATE=5000 DURATION=10 CONNS=16 KEYS=1000
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-5000}
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
KEYS=${KEYS:-1000}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_keyward
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$KEYS" --out "$work/keys.txt" 2>/dev/null
echo '{"ok":true}' >"$work/answer.json"
"$BIN/kwbench" ceiling --listen 127.0.0.1:0 --body-file "$work/answer.json" 2>"$work/upstream.log" &
pids+=($!)
upstream=$(wait_addr "$work/upstream.log" "ceiling listening" "on")
RUST_LOG=info "$BIN/keyward" gateway --upstream "http://$upstream" --data-dir "$work/data" --listen 127.0.0.1:0 \
  2>"$work/gateway.log" &
pids+=($!)
gateway=$(wait_addr "$work/gateway.log" "keyward listening" "addr=")

load() {
  "$BIN/kwbench" load --url "http://$1/v1/keys/verify" --keys "$work/keys.txt" --key-in-header \
    --rate "$RATE" --duration "$DURATION" --connections "$CONNS"
}
# Warm the gateway's cache with every key, then measure both.
"$BIN/kwbench" load --url "http://$gateway/v1/keys/verify" --keys "$work/keys.txt" --key-in-header >/dev/null
direct=$(load "$upstream")
via=$(load "$gateway")
field() { echo "$1" | grep -Eo "\"$2\":[0-9.]+" | cut -d: -f2; }
cat <<REPORT

$(nproc) cores; open loop at $RATE req/s for ${DURATION}s over $CONNS connections
                 direct      via gateway    added
p50 (µs)         $(field "$direct" p50_us)         $(field "$via" p50_us)            $(( $(field "$via" p50_us) - $(field "$direct" p50_us) ))
p99 (µs)         $(field "$direct" p99_us)         $(field "$via" p99_us)            $(( $(field "$via" p99_us) - $(field "$direct" p99_us) ))
errors           $(field "$direct" errors)           $(field "$via" errors)
REPORT
