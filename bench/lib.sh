# Shared by the bench scripts: release build, a scratch dir, process cleanup, and waiting for a
# started process to log its address. Source it from the repository root.
# BENCH_BIN=DIR uses the keyward and kwbench already in DIR (e.g. an earlier build to compare).
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
  RUST_LOG=info "$BIN/keyward" serve --data-dir "$work/data" --listen 127.0.0.1:0 2>"$work/serve.log" &
  server_pid=$!
  pids+=("$server_pid")
  addr=$(wait_addr "$work/serve.log" "keyward listening" "addr=")
  mk=$(grep -Eo '[a-z0-9]+_mk_[A-Za-z0-9]+' "$work/serve.log" | head -1)
}
