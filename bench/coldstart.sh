#!/usr/bin/env bash
# Cold start at scale (issue 34 §6). N keys in a fresh PostgreSQL database (made offline by
# `kwbench mint` and written with one COPY, with the server's pepper, so they verify), a node on
# it, H of them hot under closed-loop load (`kwbench load --run-for`); then the node is killed
# (SIGKILL) and started again on the same address under that load. Reported, for a run without
# and one with a flood of made-up keys mixed in (FLOOD_CONNS more connections sending U keys no
# one has): time from the restart to the listening line and to the set of existing keys loaded,
# hot-key throughput before and the time until it is back to ≥ 90 % of it, hot answers that
# were not VALID (2xx) or not 2xx (a 503 when a wait for the set ran out) after the restart,
# the keys its cache was warmed with at start (`keyward_cache_warmed_keys`), and the
# secret-key storage reads the new node's verifications made in its first seconds
# (`keyward_verify_storage_reads_total` from /metrics). See docs/BENCHMARKS.md.
#   bench/coldstart.sh     # N=1000000 H=10000 U=100000 CONNS=16 FLOOD_CONNS=4 BEFORE=10 AFTER=20
# PG_ADMIN is a PostgreSQL URL allowed to create databases (default: the local postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
H=${H:-10000}
U=${U:-100000}
CONNS=${CONNS:-16}
FLOOD_CONNS=${FLOOD_CONNS:-4}
BEFORE=${BEFORE:-10}
AFTER=${AFTER:-20}
BUCKET_MS=${BUCKET_MS:-250}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
HTTP_THREADS=${HTTP_THREADS:-2}

# shellcheck source=bench/lib.sh
source bench/lib.sh

db_name="kw_coldstart_$$"
db_url="${PG_ADMIN%/*}/$db_name"
psql -q "$PG_ADMIN" -c "CREATE DATABASE $db_name"
trap 'cleanup; psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
KEYWARD_PEPPER=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export KEYWARD_PEPPER
port=$(free_port)
addr=127.0.0.1:$port
now_ms() { date +%s%3N; }

# Starts a node on the database and the fixed address, logging to $work/serve-$1.log; sets
# node_pid. Returns once it listens.
start_node() {
  RUST_LOG=info "$BIN/keyward" serve --database-url "$db_url" --data-dir "$work/data" --listen "$addr" \
    --http-threads "$HTTP_THREADS" 2>"$work/serve-$1.log" &
  node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 6000); do
    grep -q "keyward listening" "$work/serve-$1.log" && return
    kill -0 "$node_pid" 2>/dev/null || break
    sleep 0.01
  done
  echo "node $1 did not start: $(cat "$work/serve-$1.log")" >&2
  exit 1
}
# From /metrics: the secret-key storage reads, whether the set of keys is loaded, and the
# keys the cache was warmed with (0 until that read is done).
sample() {
  curl -s "http://$addr/metrics" | awk '
    index($0, "keyward_verify_storage_reads_total{credential=\"secret_key\"}") == 1 { r = $NF }
    index($0, "keyward_known_credentials_loaded ") == 1 { l = $NF }
    index($0, "keyward_cache_warmed_keys ") == 1 { w = $NF }
    END { print r, l, w }'
}

# 1. The schema, a workspace and one key made through the API: the template of the others.
start_node init
mk=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$work/serve-init.log" | head -1)
template=$(curl -s -X POST "http://$addr/v1/keys" -H "Authorization: Bearer $mk" -H 'content-type: application/json' \
  -d '{"name":"coldstart","permissions":["wallet.read","tx.create"],"scopes":["wallet:*"]}')
template_id=$(echo "$template" | grep -Eo '"id":"key_[A-Z0-9]+"' | head -1 | cut -d'"' -f4)
stem=$(echo "$template" | grep -Eo '"secret":"[^"]+"' | cut -d'"' -f4 | sed 's/_sk_.*//')
kill "$node_pid"
wait "$node_pid" 2>/dev/null || true

# 2. N keys like the template, through COPY; H of their secrets kept; U made-up secrets.
seed_start=$(now_ms)
"$BIN/kwbench" mint --stem "$stem" --count "$N" --keep "$H" --secrets-out "$work/hot.txt" --rows-out "$work/rows.tsv"
"$BIN/kwbench" mint --stem "$stem" --count "$U" --secrets-out "$work/unknown.txt"
cols=$(psql -At "$db_url" -c "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns
  WHERE table_name = 'api_keys' AND table_schema = current_schema()")
sel=$(psql -At "$db_url" -c "SELECT string_agg(CASE WHEN column_name IN ('id', 'hash', 'start') THEN 'b.' ELSE 't.' END
  || column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns
  WHERE table_name = 'api_keys' AND table_schema = current_schema()")
psql -q "$db_url" <<SQL
CREATE UNLOGGED TABLE coldstart_keys (id TEXT, hash TEXT, start TEXT);
\copy coldstart_keys FROM '$work/rows.tsv'
INSERT INTO api_keys ($cols) SELECT $sel FROM coldstart_keys b CROSS JOIN (SELECT * FROM api_keys WHERE id = '$template_id') t;
DROP TABLE coldstart_keys;
ANALYZE api_keys;
SQL
rm -f "$work/rows.tsv"
seed_secs=$(awk -v a="$seed_start" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
stored=$(psql -At "$db_url" -c "SELECT count(*) FROM api_keys")

# 3. A node on them, every hot key cached once.
start_node first
"$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/hot.txt" --connections 8 >/dev/null

# One run: load (plus the flood with $1 = flood) for BEFORE + AFTER seconds, the node killed
# and restarted after BEFORE. Prints the report's column for it.
restart_run() {
  local name=$1 flood_pid=""
  "$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/hot.txt" --connections "$CONNS" \
    --run-for $((BEFORE + AFTER)) --reconnect --expect-valid --series "$work/$name.series" --bucket-ms "$BUCKET_MS" \
    >"$work/$name.json" &
  local load_pid=$!
  if [ "$name" = flood ]; then
    "$BIN/kwbench" load --url "http://$addr/v1/keys/verify" --keys "$work/unknown.txt" --connections "$FLOOD_CONNS" \
      --run-for $((BEFORE + AFTER)) --reconnect --series "$work/$name-unknown.series" --bucket-ms "$BUCKET_MS" \
      >"$work/$name-unknown.json" &
    flood_pid=$!
  fi
  sleep "$BEFORE"
  local killed
  killed=$(now_ms)
  kill -KILL "$node_pid"
  wait "$node_pid" 2>/dev/null || true
  start_node "$name"
  local listening
  listening=$(now_ms)
  # The new node's storage reads and whether its set of keys is loaded, every 100 ms.
  : >"$work/$name.reads"
  while kill -0 "$load_pid" 2>/dev/null; do
    echo "$(($(now_ms) - killed)) $(sample)" >>"$work/$name.reads"
    sleep 0.1
  done
  wait "$load_pid"
  [ -z "$flood_pid" ] || wait "$flood_pid"
  # Buckets from the load's start: before = the median good answers per bucket over the
  # BEFORE seconds (the first second left out); recovered = the first bucket after the kill
  # that, with the next, has ≥ 90 % of it (its end, from the kill).
  awk -v killed="$killed" -v listening="$listening" -v before_s="$BEFORE" -v b="$BUCKET_MS" '
    /^# start_unix_ms/ { start = $3; next }
    { good[$1] = $2; bad[$1] = $3; last = $1 }
    END {
      kb = int((killed - start) / b)
      n = 0
      for (i = int(1000 / b); i < kb; i++) v[n++] = good[i]
      for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
      med = (n % 2) ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
      rec = -1
      for (i = kb + 1; i < last; i++) if (good[i] >= 0.9 * med && good[i + 1] >= 0.9 * med) { rec = i; break }
      printf "%.0f %.2f %s\n", med * 1000 / b, (listening - killed) / 1000,
        (rec < 0 ? "never" : sprintf("%.2f", (start + (rec + 1) * b - killed) / 1000))
    }' "$work/$name.series"
}

# Run in this shell (not a subshell): node_pid and pids carry over to the next run.
restart_run plain >"$work/plain.row"
restart_run flood >"$work/flood.row"
read -r plain_rps plain_listen plain_back <"$work/plain.row"
read -r flood_rps flood_listen flood_back <"$work/flood.row"

# From a run's samples: the reads at the last sample by $2 ms after the kill; the first time
# (s) the set of keys was loaded.
reads_by() { awk -v t="$2" '$1 <= t && $2 != "" { r = $2 } END { print (r == "" ? "-" : r) }' "$work/$1.reads"; }
loaded_at() { awk '$3 == 1 { printf "%.1f", $1 / 1000; found = 1; exit } END { if (!found) print "not seen" }' "$work/$1.reads"; }
# The keys the cache was warmed with, and when (s) that read was done.
warmed() { awk '$4 > 0 { printf "%d at %.1f s", $4, $1 / 1000; found = 1; exit } END { if (!found) print "none seen" }' "$work/$1.reads"; }
field() { grep -Eo "\"$2\":[0-9.]+" "$work/$1.json" | cut -d: -f2; }

cat <<REPORT

machine: $(nproc) cores, $(uname -r); PostgreSQL $(psql -At "$PG_ADMIN" -c 'SHOW server_version')
keys stored: $stored (seeded offline in $seed_secs s); hot keys: $H, closed loop over $CONNS connections; node with $HTTP_THREADS serving thread(s)
the node killed (SIGKILL) after ${BEFORE} s and started again at once; load for ${AFTER} s more; buckets of $BUCKET_MS ms
                                         no flood        flood of made-up keys ($U keys, $FLOOD_CONNS connections)
hot keys before (req/s)                  $plain_rps          $flood_rps
kill → listening (s)                     $plain_listen          $flood_listen
kill → set of keys loaded (s)            $(loaded_at plain)          $(loaded_at flood)
keys warmed (recently used, one read)    $(warmed plain)          $(warmed flood)
kill → hot keys back to ≥ 90 % (s)       $plain_back          $flood_back
hot answers not VALID / non-2xx / failed sends  $(field plain not_valid) / $(field plain errors) / $(field plain failed)          $(field flood not_valid) / $(field flood errors) / $(field flood failed)
secret-key storage reads by +1 s         $(reads_by plain 1000)          $(reads_by flood 1000)
                         by +2 s         $(reads_by plain 2000)          $(reads_by flood 2000)
                         by +5 s         $(reads_by plain 5000)          $(reads_by flood 5000)
                         by the end      $(reads_by plain 999999999)          $(reads_by flood 999999999)
made-up keys answered during the flood run: $(field flood-unknown requests) ($(field flood-unknown rps) req/s, non-2xx $(field flood-unknown errors))
REPORT
