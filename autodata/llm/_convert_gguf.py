"""Convert a GGUF model file to a Hugging Face model directory that vLLM CPU can serve.

Runs in the vLLM environment (it has torch, transformers, gguf, accelerate), by path:

    .venv-vllm/bin/python _convert_gguf.py MODEL.gguf OUT_DIR

vLLM cannot serve GGUF on CPU (the GGUF dequant kernels need CUDA, DESIGN §4), so the weights are
dequantized once by transformers and saved as safetensors with the tokenizer and chat template.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf: Path, out_dir: Path) -> None:
    """Load ``gguf`` with transformers and save tokenizer + dequantized model to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # vLLM CPU serves bfloat16 anyway (it downcasts float32 with a warning per weight); saving
    # bfloat16 halves the directory and the load time. Loading straight into bfloat16 gives the
    # same tensors as loading float32 then casting, at a lower peak RSS (measured on
    # Qwen2.5-Coder-0.5B: 3.1 GB instead of 4.0 GB).
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The weights are already dequantized; keeping the GGUF quantizer makes save_pretrained fail,
    # and a leftover quantization_config would make vLLM look for GGUF kernels.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if not getattr(tokenizer, "chat_template", None):
        raise SystemExit(f"{gguf}: no chat template in the GGUF; it cannot serve chat requests")


def main(argv: list[str]) -> int:
    """Entry point: ``MODEL.gguf OUT_DIR``."""
    if len(argv) != 2:
        print("usage: _convert_gguf.py MODEL.gguf OUT_DIR", file=sys.stderr)
        return 2
    convert(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
