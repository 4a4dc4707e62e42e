#!/usr/bin/env bash
# RSS per cached key. Creates KEYS secret keys once (SQLite), then ROUNDS times for each
# thread count in THREADS: starts `keyward serve` on that data, verifies 1,000 keys and reads
# VmRSS after SETTLE seconds, verifies all KEYS and reads it again; per key = the growth over
# the entries the cache gained between the two readings (`keyward_cache_entries`). Each round
# starts from the data as seeded: a node warms its cache at start with the keys used before
# (`cache/warm.rs`), which would put most of them in the first reading. Prints each round and the medians, with the split of the last round's RSS
# (mimalloc's anonymous memory, the C heap that SQLite uses, the mapped binary).
# RSS moves with what the allocator has not yet returned, so one reading says little: the
# medians of several restarts do. It times nothing, so a busy machine changes it little.
#   bench/memory.sh             # KEYS=50000 THREADS="1 2" ROUNDS=3 SETTLE=6
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-50000}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-6}

# shellcheck source=bench/lib.sh
source bench/lib.sh

start_keyward
"$BIN/kwbench" seed --server "http://$addr" --token "$mk" --count "$KEYS" --out "$work/keys.txt" 2>/dev/null
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
head -1000 "$work/keys.txt" >"$work/first.txt"
cp -a "$work/data" "$work/seeded"

rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
entries() { curl -s "http://$1/metrics" | awk '$1 == "keyward_cache_entries" { print $2 }'; }
# kB of the process's mappings: anonymous ones over 10 MB (mimalloc's arenas), [heap], the binary.
rss_parts() {
  awk -v bin="$BIN/keyward" '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 }
    /^Rss:/ { if (name == "" && $2 > 10240) a += $2; else if (name == "[heap]") h += $2; else if (name ~ /keyward$/) b += $2 }
    END { printf "mimalloc arenas %d MB, C heap %d MB, binary %d MB", a / 1024, h / 1024, b / 1024 }' "/proc/$1/smaps"
}

for t in $THREADS; do
  : >"$work/rounds-$t"
  for round in $(seq "$ROUNDS"); do
    : >"$work/serve-$t.log"
    rm -rf "$work/data" && cp -a "$work/seeded" "$work/data"
    RUST_LOG=info "$BIN/keyward" serve --data-dir "$work/data" --listen 127.0.0.1:0 --http-threads "$t" \
      2>"$work/serve-$t.log" &
    pid=$!
    pids+=("$pid")
    a=$(wait_addr "$work/serve-$t.log" "keyward listening" "addr=")
    "$BIN/kwbench" load --url "http://$a/v1/keys/verify" --keys "$work/first.txt" --connections 8 >/dev/null
    sleep "$SETTLE"
    small=$(rss "$pid")
    held=$(entries "$a")
    "$BIN/kwbench" load --url "http://$a/v1/keys/verify" --keys "$work/keys.txt" --connections 8 >/dev/null
    sleep "$SETTLE"
    big=$(rss "$pid")
    all=$(entries "$a")
    per=$(awk -v a="$small" -v b="$big" -v n=$((all - held)) 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    echo "$per $small $big" >>"$work/rounds-$t"
    echo "threads $t round $round: RSS $((small / 1024)) MB with $held keys cached, $((big / 1024)) MB with $all: $per B per key" >&2
    parts=$(rss_parts "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  echo "threads $t: median $(col_median "$work/rounds-$t" 1) B per cached key ($KEYS keys, $ROUNDS rounds); RSS with $KEYS keys $(( $(col_median "$work/rounds-$t" 3) / 1024 )) MB (last round: $parts)"
done
