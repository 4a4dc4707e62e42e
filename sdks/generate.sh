#!/usr/bin/env bash
# Regenerates every SDK's models from sdks/openapi.json (each sdks/<language>/generate.sh).
# `--check` fails when the regenerated models differ from the committed ones (CI's drift check).
set -euo pipefail
cd "$(dirname "$0")"
for g in */generate.sh; do
  [ -e "$g" ] || continue
  echo "== $(dirname "$g")"
  bash "$g" "$@"
done
