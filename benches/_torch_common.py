"""Shared helpers for the PyTorch baseline benchmarks (not a benchmark itself)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF de-quantisation progress bar

DEFAULT_MODEL = Path.home() / ".cache/negdiff/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def load_gguf(path: Path, attn: str = "sdpa"):
    """transformers' GGUF loader, dequantised to float32; returns (tokenizer, model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    path = Path(path).expanduser()
    d, f = str(path.parent), path.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation=attn)
    model.eval()
    return tok, model
