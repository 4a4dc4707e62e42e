#!/usr/bin/env bash
# GitHub's secret-scanning partner call (`POST /v1/secret-scanning/github`) with a batch of
# MATCHES matches (default 10,000, the most GitHub sends), REAL of them live keys of this
# server (each is revoked, audited and alerted as a leak: the costly part), the rest made-up
# keys with valid checksums and other strings. The batch is signed as GitHub signs it (ECDSA
# P-256 over SHA-256 of the raw body, `openssl dgst`), the signer's public key served from a
# local keys URL. It prints the seconds each call took against GitHub's 30 s budget; RUNS
# fresh servers, one call each. BENCH_BIN=DIR uses the keyward and kwbench already in DIR.
#   bench/github.sh            # MATCHES=10000 REAL=1000 RUNS=3
#   REAL=10000 bench/github.sh # every match a live key: the worst case
set -euo pipefail
cd "$(dirname "$0")/.."
MATCHES=${MATCHES:-10000}
REAL=${REAL:-1000}

# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }

# The signer: a P-256 key, its public half in GitHub's keys document, served locally.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/signer.pem" 2>/dev/null
openssl ec -in "$work/signer.pem" -pubout -out "$work/signer.pub" 2>/dev/null
mkdir -p "$work/www"
python3 - "$work/signer.pub" "$work/www/keys" <<'PY'
import json, sys
pem = open(sys.argv[1]).read()
json.dump({"public_keys": [{"key_identifier": "bench-1", "key": pem, "is_current": True}]}, open(sys.argv[2], "w"))
PY
keys_port=$(free_port)
python3 -m http.server "$keys_port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
pids+=("$!")

times=()
for run in $(seq "$RUNS"); do
  rm -rf "$work/data"
  RUST_LOG=info "$BIN/keyward" serve --data-dir "$work/data" --listen 127.0.0.1:0 \
    --secret-scanning-keys-url "http://127.0.0.1:$keys_port/keys" 2>"$work/serve.log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 300); do grep -q "keyward listening" "$work/serve.log" && break; sleep 0.1; done
  addr=$(grep "keyward listening" "$work/serve.log" | head -1 | sed -E 's/.*addr= *([0-9.:]+).*/\1/')
  mk=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$work/serve.log" | head -1)
  : >"$work/real.txt"
  if [ "$REAL" -gt 0 ]; then
    "$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$REAL" --out "$work/real.txt" 2>/dev/null
  fi
  # The batch: the real keys spread through made-up ones (checksums that hold) and strings.
  python3 - "$work/real.txt" "$MATCHES" "$work/batch.json" <<'PY'
import json, random, sys, zlib
real = [l.strip() for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
rnd = random.Random(11)
def b62(x, width):
    s = ""
    while x:
        x, r = divmod(x, 62)
        s = B62[r] + s
    return s.rjust(width, "0")
def made_up():
    body = "".join(rnd.choice(B62) for _ in range(43))
    return "kw_live_sk_" + body + b62(zlib.crc32(body.encode()), 6)
tokens = [made_up() if i % 2 else f"kw_live_sk_not_a_key_{i}" for i in range(n - len(real))] + real
rnd.shuffle(tokens)
batch = [{"token": t, "type": "keyward_secret_key", "url": f"https://github.com/o/r/blob/main/f{i}.py", "source": "content"}
         for i, t in enumerate(tokens)]
open(sys.argv[3], "w").write(json.dumps(batch, separators=(",", ":")))
PY
  sig=$(openssl dgst -sha256 -sign "$work/signer.pem" "$work/batch.json" | base64 -w0)
  start=$(date +%s.%N)
  status=$(curl -s -o "$work/feedback.json" -w '%{http_code}' -X POST "http://$addr/v1/secret-scanning/github" \
    -H 'content-type: application/json' -H "Github-Public-Key-Identifier: bench-1" \
    -H "Github-Public-Key-Signature: $sig" --data-binary "@$work/batch.json")
  end=$(date +%s.%N)
  positives=$(grep -o '"true_positive"' "$work/feedback.json" | wc -l)
  if [ "$status" != 200 ] || [ "$positives" != "$REAL" ]; then
    echo "run $run: status $status, $positives true positives (want $REAL)" >&2; exit 1
  fi
  t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  times+=("$t")
  echo "run $run: $MATCHES matches, $REAL live keys revoked: $t s ($(awk -v t="$t" 'BEGIN { printf "%.3f", t / 30 }') of GitHub's 30 s)"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median: $median s = $(awk -v t="$median" 'BEGIN { printf "%.3f", t / 30 }') of GitHub's 30 s budget"
