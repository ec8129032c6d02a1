#!/usr/bin/env bash
# Sets up a fresh machine for the tests and runs them: a virtual environment with the project and
# its test extras, Chromium for the report's browser test (Debian package, where apt-get exists),
# then pytest. On a machine without a GPU the `gpu` tests skip with their reason.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip"
fi
exec .venv/bin/python -m pytest "$@"
