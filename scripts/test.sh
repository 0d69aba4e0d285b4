#!/usr/bin/env bash
# The test command (README, and exactly what .ci/run calls): install what is missing, then
# lint, type-check, and run the unit and integration tests (real vLLM, Prefect, DVC, GE).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest"
.venv/bin/pytest tests/unit tests/integration -q -p no:cacheprovider "$@"
