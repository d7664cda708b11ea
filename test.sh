#!/usr/bin/env bash
# The whole test suite: lint, format check, type check, unit and integration tests.
# Extra arguments go to pytest (e.g. ./test.sh -m slow, ./test.sh tests/unit).
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/pytest "$@"
