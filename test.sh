#!/usr/bin/env bash
# The whole test suite: lint, format and type checks, the import layers, the docs build, then
# pytest: unit tests (on every core), the benches at their smallest, integration tests with
# real VMs.
# Extra arguments go to pytest (e.g. ./test.sh -m slow, ./test.sh tests/unit).
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
# The import layers (pyproject.toml, docs/design.md): the report only when a contract breaks.
layers="$(.venv/bin/lint-imports --no-cache 2>&1)" || { echo "$layers"; exit 1; }
# The documentation site, strictly (a broken link or anchor, a page missing from mkdocs.yml's
# nav: each fails), into a temporary directory removed on exit. Not --quiet: it hides the
# warnings that --strict counts.
site="$(mktemp -d)" && trap 'rm -rf "$site"' EXIT && NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site"
if [ $# -gt 0 ]; then .venv/bin/pytest "$@"; exit; fi
# The whole suite in two runs: the unit tests (no VM, each busy on one core) spread over every
# core, then the rest a module per worker (its tests share a module's lab; while one waits on
# its guests, another's boot uses the cores), at most four: TCG guests take a core each.
.venv/bin/pytest -n auto tests/unit
.venv/bin/pytest -n "$(( $(nproc) < 4 ? $(nproc) : 4 ))" --dist loadfile --ignore=tests/unit
