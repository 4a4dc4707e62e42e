#!/usr/bin/env bash
# Redis's own time per exact check: the limits script of crates/keyward-server/src/limits/redis.rs
# (taken from the source) in a private redis-server, run ROUNDS times for one check alone and
# for runs of RUN checks (different keys, one limit each, never reached; with CREDITS=1 credits
# too), as `INFO commandstats` times EVALSHA. Prints µs per check for both and their ratio,
# measured in the same run. No network or node in it: what Redis spends inside the script.
#   bench/exact_script.sh              # RUN=64 ROUNDS=300 PORT=7391 CREDITS=0
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-64}
ROUNDS=${ROUNDS:-300}
PORT=${PORT:-7391}
CREDITS=${CREDITS:-0}
if redis-cli -p "$PORT" PING >/dev/null 2>&1; then
  echo "port $PORT is taken: set PORT" >&2
  exit 1
fi
work=$(mktemp -d)
redis-server --port "$PORT" --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
python3 - crates/keyward-server/src/limits/redis.rs "$work/script.lua" <<'EOF'
import sys
s = open(sys.argv[1]).read()
start = s.index('const SCRIPT: &str = r#"') + len('const SCRIPT: &str = r#"')
open(sys.argv[2], 'w').write(s[start:s.index('"#;', start)])
EOF
sha=$(redis-cli -p "$PORT" SCRIPT LOAD "$(cat "$work/script.lua")")
# One run of $1 checks: keys, then the count, then each check's arguments after their count.
command() {
  python3 - "$1" "$sha" "$CREDITS" <<'EOF'
import sys, time
n, sha, credits = int(sys.argv[1]), sys.argv[2], sys.argv[3] == '1'
now = int(time.time() * 1e6)
keys, args = [], [str(n)]
for i in range(n):
    keys += [f"kw:rl:bench_{i}", f"kw:cr:bench_{i}"]
    # The holder's fingerprint and its hash's lifetime (ms), then its one limit.
    a = [now, now + 10**12, "1" if credits else "0", 1, 12345, 2000, 1, 1, "l1", 1, 1000000, 1]
    a += ["1", 1, 10**12, 0, 1000, -1, 0] if credits else ["0"]
    args += [str(len(a))] + [str(x) for x in a]
print(" ".join(["EVALSHA", sha, str(len(keys))] + keys + args))
EOF
}
per_check() {
  local cmd
  cmd=$(command "$1")
  redis-cli -p "$PORT" FLUSHALL >/dev/null
  # shellcheck disable=SC2086
  redis-cli -p "$PORT" $cmd >/dev/null
  redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
  # shellcheck disable=SC2086
  redis-cli -p "$PORT" -r "$2" $cmd >/dev/null
  redis-cli -p "$PORT" INFO commandstats | tr -d '\r' |
    awk -F'[=,]' -v n="$1" '/^cmdstat_evalsha:/ { printf "%.2f", $6 / n }'
}
alone=$(per_check 1 $((ROUNDS * RUN / 4)))
together=$(per_check "$RUN" "$ROUNDS")
echo "Redis time per exact check (credits: $CREDITS): alone $alone µs, in runs of $RUN $together µs" \
  "($(awk -v a="$alone" -v b="$together" 'BEGIN { printf "%.2f", b / a }') of alone)"
