# Shared by the bench scripts: release build, a scratch dir, process cleanup, waiting for a
# started process to log its address, nginx as the same-run baseline, and wrk runs measured
# with the CPU time the server spent. Source it from the repository root.
# BENCH_BIN=DIR uses the keyward and kwbench already in DIR (e.g. an earlier build to compare).
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release -q -p keyward-cli -p kwbench
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
RUNS=${RUNS:-3}
# Keyward's serving threads: one, as nginx here runs one worker (the same-run comparison is
# worker for worker). HTTP_THREADS=2 measures the default of a two-core machine instead.
HTTP_THREADS=${HTTP_THREADS:-1}
TICK=$(getconf CLK_TCK)

# Waits for a line matching $2 in file $1 and prints the address after $3.
wait_addr() {
  for _ in $(seq 300); do
    if grep -q "$2" "$1"; then grep "$2" "$1" | head -1 | sed -E "s/.*$3 *([0-9.:]+).*/\1/"; return; fi
    sleep 0.1
  done
  echo "did not start: $(cat "$1")" >&2; exit 1
}

# Starts `keyward serve` on a fresh data dir; sets addr, mk and server_pid.
start_keyward() {
  RUST_LOG=info "$BIN/keyward" serve --data-dir "$work/data" --listen 127.0.0.1:0 --http-threads "$HTTP_THREADS" \
    2>"$work/serve.log" &
  server_pid=$!
  pids+=("$server_pid")
  addr=$(wait_addr "$work/serve.log" "keyward listening" "addr=")
  mk=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$work/serve.log" | head -1)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts nginx as one process (no master, one worker's work) serving the `server { }` body $2;
# $1 names it. Sets nginx_pid and nginx_port.
start_nginx() {
  nginx_port=$(free_port)
  mkdir -p "$work/$1"
  cat >"$work/$1/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1/body;
  proxy_temp_path $work/$1/proxy;
  keepalive_requests 100000;
  ${3:-}
  server {
    listen 127.0.0.1:$nginx_port;
    $2
  }
}
CONF
  "$NGINX" -p "$work/$1" -c "$work/$1/nginx.conf" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && return
    sleep 0.1
  done
  echo "nginx did not start: $(cat "$work/$1/error.log")" >&2; exit 1
}

# CPU time (user + system, all threads) a process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk -t1 -cCONNS against URL $2 with Lua script $3 (and its arguments after them), measuring
# the CPU process $1 spent: prints req/s, p50 µs, p99 µs, non-2xx answers, CPU µs/request,
# and, when REDIS_CPU_URL names a Redis, the CPU µs that Redis spent per request (from its
# `INFO cpu`; else `-`).
wrk_cpu() {
  local pid=$1 url=$2 script=$3; shift 3
  local before after r_before r_after
  before=$(cpu_ticks "$pid")
  r_before=$(redis_cpu_seconds)
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@" >"$work/wrk.txt"
  after=$(cpu_ticks "$pid")
  r_after=$(redis_cpu_seconds)
  awk -v ticks=$((after - before)) -v hz="$TICK" -v rb="$r_before" -v ra="$r_after" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /Non-2xx/ { bad = $NF }
    END {
      per = n > 0 ? n : 1
      redis = rb == "" ? "-" : sprintf("%.1f", (ra - rb) * 1000000 / per)
      printf "%.0f %.0f %.0f %d %.1f %s\n", rps, p50, p99, bad, ticks * 1000000 / hz / per, redis
    }' "$work/wrk.txt"
}

# Redis's CPU seconds so far (user + system) at REDIS_CPU_URL; nothing when it is unset.
redis_cpu_seconds() {
  [ -n "${REDIS_CPU_URL:-}" ] || return 0
  redis-cli -u "$REDIS_CPU_URL" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { print s }'
}

# The median of the numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Column $2 (1-based) of the rows in file $1, median.
col_median() { awk -v c="$2" '{ print $c }' "$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# RUNS rounds of wrk_cpu on each target ("NAME PID URL [KEYS]", URL with its path), the order
# alternating each round so drift in the machine's speed weighs on all alike; then sets
# NAME_1 (req/s), NAME_2 (p50), NAME_3 (p99), NAME_5 (CPU µs/request), NAME_6 (Redis's CPU
# µs/request, or `-`), medians, and NAME_bad (non-2xx, summed). The remaining arguments after
# `--` go to wrk_cpu: the script, then its arguments, the first of which (a keys file) a
# target's own KEYS replaces.
measure_in_turns() {
  local targets=() rest run i name pid url keys row c
  while [ "$1" != "--" ]; do targets+=("$1"); shift; done
  shift
  rest=("$@")
  for run in $(seq "$RUNS"); do
    if ((run % 2)); then order=$(seq 0 $((${#targets[@]} - 1))); else order=$(seq $((${#targets[@]} - 1)) -1 0); fi
    for i in $order; do
      read -r name pid url keys <<<"${targets[$i]}"
      if [ -n "$keys" ]; then
        row=$(wrk_cpu "$pid" "$url" "${rest[0]}" "$keys" "${rest[@]:2}")
      else
        row=$(wrk_cpu "$pid" "$url" "${rest[@]}")
      fi
      echo "$row" >>"$work/$name.rows"
      echo "run $run $name: $row  (req/s p50 p99 non-2xx cpu-µs/req)" >&2
    done
  done
  for t in "${targets[@]}"; do
    read -r name _ <<<"$t"
    for c in 1 2 3 5; do eval "${name}_$c=$(col_median "$work/$name.rows" "$c")"; done
    if grep -q ' -$' "$work/$name.rows"; then eval "${name}_6=-"; else eval "${name}_6=$(col_median "$work/$name.rows" 6)"; fi
    eval "${name}_bad=$(awk '{ s += $4 } END { print s + 0 }' "$work/$name.rows")"
  done
}
