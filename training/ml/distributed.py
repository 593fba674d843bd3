"""Data parallelism across processes with torch.distributed (gloo on CPU, nccl on GPUs).

Every rank holds a full model copy; each takes its shard of a batch, gradients are summed
across ranks before every optimizer step, so parameters stay identical. Launch with
``torchrun --nproc-per-node N -m training.ml.cli ...``: without a process group every helper
is a no-op and the code runs single-process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn


def init_from_environment() -> None:
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(items: list, index: int | None = None, count: int | None = None) -> list:
    """This rank's share of a batch: items[rank::world]."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    return items[index::count]


def all_reduce_sum(tensor: Tensor) -> Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_gradients(parameters: Sequence[nn.Parameter]) -> None:
    """Sum gradients over ranks in one flat buffer (losses are pre-scaled by global sizes)."""
    if not dist.is_initialized():
        return
    # A rank whose shard of a short last batch was empty has no gradients: it contributes
    # zeros, so that every rank takes part in the same collective (else gloo/nccl hang).
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not dist.is_initialized():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)
