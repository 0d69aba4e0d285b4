#!/usr/bin/env bash
# Install everything autodata needs on a fresh machine with Python 3.11. Idempotent and quick
# the second time. Usage: bash scripts/setup.sh
#   1. uv (from PyPI, if missing)       2. the pipeline's .venv (uv sync --frozen)
#   3. the vLLM environment .venv-vllm  4. the embedded model, converted once for vLLM
# Set AUTODATA_SKIP_VLLM=1 to skip 3-4 when every role points at an external server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

PYTHON="$(command -v python3.11 || command -v python3 || true)"
[[ -n "$PYTHON" ]] || die "no python3.11 on PATH; install Python 3.11 and re-run"

find_uv() { command -v uv || { [[ -x "$HOME/.local/bin/uv" ]] && echo "$HOME/.local/bin/uv"; } || true; }
UV="$(find_uv)"
if [[ -z "$UV" ]]; then
    say "installing uv with pip"
    "$PYTHON" -m pip install -q --user uv 2>/dev/null || "$PYTHON" -m pip install -q uv \
        || die "could not pip install uv; install it (https://docs.astral.sh/uv/) and re-run"
    UV="$(find_uv)"
    [[ -n "$UV" ]] || UV="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/uv"
fi

# PYTHONDONTWRITEBYTECODE=1 on some machines makes imports 3x slower without compiled bytecode.
say "syncing the pipeline environment (.venv)"
UV_COMPILE_BYTECODE=1 "$UV" sync --frozen --python "$PYTHON" -q || die "uv sync failed; see above"

if [[ "${AUTODATA_SKIP_VLLM:-0}" != "1" ]]; then
    bash scripts/setup-vllm.sh
    say "preparing the embedded model (converted once, then cached)"
    .venv/bin/autodata models prepare
fi
say "done: run '.venv/bin/autodata --help'"
