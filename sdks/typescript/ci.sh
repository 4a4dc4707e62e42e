#!/usr/bin/env bash
# CI for @keyward/sdk (called by .ci/run): install the pinned dev dependencies (npm ci, the
# committed lockfile), check that src/openapi.ts is what sdks/openapi.json generates, build the
# ESM and CommonJS outputs, type-check a consumer, run the tests (node --test against the
# build output) against the server at $KEYWARD_URL ($KEYWARD_MANAGEMENT_KEY,
# $KEYWARD_WORKSPACE_ID; $KEYWARD_BIN for tests that start a server of their own), and check
# what `npm pack` would ship.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "node is required (>= 18)" >&2; exit 1; }
echo "node $(node --version), npm $(npm --version)"
npm ci --no-audit --no-fund --loglevel=error
bash generate.sh --check
npm run build --silent
node_modules/.bin/tsc -p test/types/tsconfig.json
out="${TMPDIR:-/tmp}/keyward-ts-test.txt"
node --test --test-concurrency=1 test/*.test.mjs | tee "$out"
npm pack --dry-run --ignore-scripts >"${TMPDIR:-/tmp}/keyward-ts-pack.txt" 2>&1
for f in dist/esm/index.js dist/cjs/index.js dist/esm/express.js dist/cjs/fastify.js dist/esm/hono.d.ts package.json README.md; do
  grep -q " $f\$" "${TMPDIR:-/tmp}/keyward-ts-pack.txt" || { echo "npm pack would not ship $f" >&2; cat "${TMPDIR:-/tmp}/keyward-ts-pack.txt" >&2; exit 1; }
done
grep -E "total files|package size" "${TMPDIR:-/tmp}/keyward-ts-pack.txt"
passed=$(sed -n 's/^# pass //p' "$out"); failed=$(sed -n 's/^# fail //p' "$out")
echo "typescript: ${passed:-0} passed, ${failed:-0} failed"
