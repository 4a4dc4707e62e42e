#!/usr/bin/env bash
# The Python SDK in CI (.ci/run calls it): installs the SDK with its extras and the pinned test
# dependencies into $VENV (the run's one virtualenv), checks that the generated files match
# sdks/openapi.json, then runs pytest against the server at $KEYWARD_URL
# ($KEYWARD_MANAGEMENT_KEY, $KEYWARD_WORKSPACE_ID; $KEYWARD_BIN for tests that start their own).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${VENV:?VENV must name the virtualenv of the CI run}"
: "${KEYWARD_URL:?}" "${KEYWARD_MANAGEMENT_KEY:?}"
py="$VENV/bin/python"

echo "== sdks/python: install"
"$py" -m pip install -q "$here[fastapi,django,signing]" -r "$here/requirements-test.txt" -r "$here/requirements-generate.txt"

echo "== sdks/python: generate.sh --check"
bash "$here/generate.sh" --check

echo "== sdks/python: pytest"
cd "$here"
# tests/ has no __init__.py: the installed package is imported, not src/ (what users get).
"$py" -m pytest -q -p no:cacheprovider tests
