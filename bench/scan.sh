#!/usr/bin/env bash
# `keyward scan` throughput on a generated tree (~1 GB by default, 1 MB files scanned on every
# core) and on the same bytes as one file (one thread, read through scan's 4 MiB window),
# each against `grep -F` of a key prefix over the same bytes in the same run (the floor: one
# fixed string, no checks). Needs twice SIZE_MB of free space in $TMPDIR.
# Usage: bench/scan.sh [SIZE_MB] (default 1024). BENCH_BIN=DIR uses the keyward already in DIR;
# otherwise a release build. RUNS=N (default 3) runs of each, after one warm-up read.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1024}
RUNS=${RUNS:-3}
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release -q -p keyward-cli
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1 MB files of source-like text (identifiers with underscores, base62 runs, look-alikes
# with a bad checksum every 500 lines), in folders of 100, and 3 real keys planted (their
# checksum made with zlib.crc32 and base62 as keyformat.rs makes it).
python3 - "$work/tree" "$SIZE_MB" <<'PY'
import os, random, sys, zlib
root, size_mb = sys.argv[1], int(sys.argv[2])
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
rnd = random.Random(7)
def key(prefix, env):
    body = "".join(rnd.choice(B62) for _ in range(43))
    v, s = zlib.crc32(body.encode()), ""
    for _ in range(6):
        s = B62[v % 62] + s; v //= 62
    return f"{prefix}_{env}_sk_{body}{s}"
words = ["let", "user_id", "api_key", "fn", "self", "return", "config", "tmp_sk_value", "live_sk", "the", "=", "{", "}", "//", "kw_live_mk"]
lines = []
for i in range(20000):
    w = " ".join(rnd.choice(words) for _ in range(6))
    if i % 500 == 0:
        w += " kw_live_sk_" + "".join(rnd.choice(B62) for _ in range(49))  # bad checksum
    lines.append(w + " " + "".join(rnd.choice(B62) for _ in range(10)))
chunk = ("\n".join(lines) + "\n").encode()
per_file = 1 << 20
chunk = (chunk * (per_file // len(chunk) + 1))[:per_file]
for n in range(size_mb):
    d = os.path.join(root, f"d{n // 100:03d}")
    os.makedirs(d, exist_ok=True)
    data = chunk
    if n in (1, size_mb // 2, size_mb - 1):
        data = chunk[:4096] + f"\nAPI_KEY={key('kw', 'live')}\n".encode() + chunk[4096:]
    with open(os.path.join(d, f"f{n:05d}.rs"), "wb") as f:
        f.write(data)
PY
bytes=$(du -sb "$work/tree" | cut -f1)
cat "$work"/tree/*/* > "$work/one.rs"   # the same bytes as one file
cat "$work"/tree/*/* "$work/one.rs" > /dev/null   # warm the page cache once
t() { local s e; s=$(date +%s.%N); "$@" > "$work/out" 2>/dev/null || true; e=$(date +%s.%N); echo "$e - $s" | bc; }
best() { sort -n | head -1; }
mb=$(echo "$bytes / 1048576" | bc)
rate() { echo "$mb / $1" | bc -l; }

scan=$(for _ in $(seq "$RUNS"); do t "$BIN/keyward" scan "$work/tree"; done | best)
found=$(grep -c ': secret_key ' "$work/out" || true)
grep_s=$(for _ in $(seq "$RUNS"); do t grep -rF -c kw_live_sk_ "$work/tree"; done | best)
scan1=$(for _ in $(seq "$RUNS"); do t "$BIN/keyward" scan "$work/one.rs"; done | best)
found1=$(grep -c ': secret_key ' "$work/out" || true)
grep1=$(for _ in $(seq "$RUNS"); do t grep -F -c kw_live_sk_ "$work/one.rs"; done | best)

printf 'tree: %s MB in %s files, %s cores\n' "$mb" "$(find "$work/tree" -type f | wc -l)" "$(nproc)"
printf 'keyward scan TREE:   %.2f s (%.0f MB/s), %s keys found (3 planted, look-alikes ignored)\n' "$scan" "$(rate "$scan")" "$found"
printf 'grep -rF -c TREE:    %.2f s (%.0f MB/s)\n' "$grep_s" "$(rate "$grep_s")"
printf 'ratio scan/grep:     %.2f\n' "$(echo "$scan / $grep_s" | bc -l)"
printf 'keyward scan FILE:   %.2f s (%.0f MB/s), %s keys found (one %s MB file)\n' "$scan1" "$(rate "$scan1")" "$found1" "$mb"
printf 'grep -F -c FILE:     %.2f s (%.0f MB/s)\n' "$grep1" "$(rate "$grep1")"
printf 'ratio scan/grep:     %.2f\n' "$(echo "$scan1 / $grep1" | bc -l)"
