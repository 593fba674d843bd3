"""Mixed precision: bf16 autocast over float32 master weights, and TF32 matmuls on CUDA.

Parameters, gradients and the optimizer's state stay float32 (the master weights). Inside
:func:`autocast` matrix multiplies run in bfloat16 (activations and the key/value cache too),
with float32 accumulation; log-softmax, losses, the scalar value and reward heads and the
reward normalization stay float32 (the model code casts them). bf16 has float32's exponent
range, so no loss scaling is needed (fp16 would need it).

A config's ``mixed_precision`` is "off" (float32), "bf16" (autocast on any device; CPU
autocast is slow without bf16 units: the tests use it to check numerics), or "auto" (bf16 on
CUDA devices that support it, float32 elsewhere: the ``paper`` presets).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from .config import PRECISIONS as MODES


def bf16_enabled(mode: str, device: torch.device) -> bool:
    """Whether a config's ``mixed_precision`` mode turns bf16 autocast on for ``device``."""
    if mode not in MODES:
        raise ValueError(f"mixed_precision must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return mode == "bf16"


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager[object]:
    """bf16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def enable_tf32() -> bool:
    """Let the float32 matmuls and convolutions left outside autocast use TF32 tensor cores
    (Ampere and later GPUs: float32's range, a 10-bit mantissa). False without CUDA."""
    if not torch.cuda.is_available():
        return False
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # type: ignore[attr-defined]
    else:  # pragma: no cover - older torch
        matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return True
