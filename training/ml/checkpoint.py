"""Atomic, versioned checkpoints with everything needed for an exact resume.

Layout of a policy output directory::

    out_dir/LATEST                      name of the newest complete checkpoint (atomic rename)
    out_dir/checkpoints/step-00000012/  model/ (merged LM + tokenizer: loadable by load_model)
                                        trainable.safetensors (trainable params, value head)
                                        state.pt (optimizer, scheduler, KL controller, counters,
                                                  RNG states, metrics history)

A checkpoint directory is written under a temporary name and renamed into place, then
LATEST is replaced atomically: a reader never sees a half-written version.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .models import atomic_directory

LATEST, CHECKPOINTS = "LATEST", "checkpoints"


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "generator": generator.get_state(),
    }


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    generator.set_state(state["generator"])


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: parameter.detach().contiguous().clone()
        for name, parameter in module.named_parameters()
        if parameter.requires_grad
    }


def load_trainable_state(module: nn.Module, path: Path) -> None:
    state = load_file(path)
    parameters = dict(module.named_parameters())
    missing = {n for n, p in parameters.items() if p.requires_grad} - set(state)
    if missing:
        raise ValueError(f"checkpoint lacks parameters: {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, tensor in state.items():
            parameters[name].copy_(tensor)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint directory of ``out_dir`` (None when there is none)."""
    pointer = Path(out_dir) / LATEST
    if not pointer.is_file():
        return None
    path = Path(out_dir) / CHECKPOINTS / pointer.read_text().strip()
    return path if path.is_dir() else None


def latest_model_dir(out_dir: str | Path) -> Path | None:
    """The loadable LM (``model/``) of the newest checkpoint."""
    checkpoint = latest_checkpoint(out_dir)
    return checkpoint / "model" if checkpoint else None


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    policy: nn.Module,
    merged_lm: Any,
    tokenizer: Any,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` atomically and point LATEST at it; keep the newest ``keep``."""
    out = Path(out_dir)
    name = f"step-{step:08d}"
    final = out / CHECKPOINTS / name
    tmp, commit = atomic_directory(final)
    merged_lm.save_pretrained(tmp / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "model")
    save_file(trainable_state(policy), tmp / "trainable.safetensors")
    torch.save(state, tmp / "state.pt")
    commit()
    pointer_tmp = out / f".{LATEST}.tmp"
    pointer_tmp.write_text(name)
    os.replace(pointer_tmp, out / LATEST)
    versions = sorted(p for p in (out / CHECKPOINTS).iterdir() if p.name.startswith("step-"))
    for old in versions[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(checkpoint: Path, policy: nn.Module) -> dict[str, Any]:
    """Restore trainable parameters into ``policy``; return the saved training state."""
    load_trainable_state(policy, checkpoint / "trainable.safetensors")
    return torch.load(checkpoint / "state.pt", weights_only=False)
