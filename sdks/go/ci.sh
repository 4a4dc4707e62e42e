#!/usr/bin/env bash
# The Go SDK's CI (called by .ci/run against one real server): installs Go if missing
# (Debian's golang-go, Go 1.19+), checks the hand-written models against sdks/openapi.json
# (generate.sh --check), then `go vet` and `go test` against the server at $KEYWARD_URL
# ($KEYWARD_MANAGEMENT_KEY, $KEYWARD_WORKSPACE_ID; $KEYWARD_BIN for the tests that need a
# server of their own). Standard library only: nothing is downloaded (GOPROXY=off).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null; then
  echo "== installing golang-go"
  (apt-get update -qq && apt-get install -y -qq golang-go) >/dev/null
fi
go version
minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 19 ]; then
  echo "Go 1.19 or newer needed, found $(go env GOVERSION)" >&2
  exit 1
fi

export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
# Fail (not skip) when the server is missing.
export KEYWARD_REQUIRE_SERVER=1

echo "== generate.sh --check (models against sdks/openapi.json)"
bash ./generate.sh --check
echo "== go vet"
go vet ./...
echo "== go test"
log="$(mktemp)"
set +e
go test -count=1 -v ./... >"$log" 2>&1
status=$?
set -e
grep -E '^(--- |ok |FAIL|panic)' "$log" || true
echo "go test: $(grep -c '^--- PASS' "$log") passed, $(grep -c '^--- FAIL' "$log") failed, $(grep -c '^--- SKIP' "$log") skipped"
if [ "$status" -ne 0 ]; then
  grep -B2 -A25 -E -- '--- FAIL|^panic|cannot|build failed' "$log" | head -100 || true
fi
rm -f "$log"
exit "$status"
