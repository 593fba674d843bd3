"""Data parallelism across processes with torch.distributed (gloo on CPU, nccl on GPUs).

Every rank holds a full model copy wrapped in torch's DistributedDataParallel
(:func:`data_parallel`): DDP broadcasts rank 0's parameters when it wraps the model and
averages gradients across ranks in buckets, overlapped with the backward pass, so parameters
stay identical. Each rank takes its shard of a batch (:func:`shard`: items rank, rank + world,
...); :func:`gather_rows` puts every rank's rows back into the batch's order. Launch with
``torchrun --nproc-per-node N -m training.ml.launch SPEC`` (what a worker does with
``TRAINING_PROCESSES`` > 1) or ``-m training.ml.cli``: without a process group every helper
is a no-op and the code runs single-process.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")


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


def shard(items: list[T], index: int | None = None, count: int | None = None) -> list[T]:
    """This rank's share of a batch: items[rank::world]."""
    index = rank() if index is None else index
    count = world_size() if count is None else count
    return items[index::count]


def all_reduce_sum(tensor: Tensor) -> Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def data_parallel(module: nn.Module) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when a process group is up, else the
    module itself. Only parameters that require grad take part, and every one of them must
    get a gradient in each synchronized backward pass. DDP averages gradients over ranks:
    a loss that sums over the global batch is multiplied by the world size."""
    if not dist.is_initialized():
        return module
    device = next(module.parameters()).device
    return DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        broadcast_buffers=False,  # buffers (reward gain/bias, masks) never differ across ranks
    )


def gradient_sync(model: nn.Module, sync: bool) -> AbstractContextManager[object]:
    """Around the forward and backward pass of one micro-batch: DDP's all-reduce is skipped
    (gradients accumulate locally) unless ``sync``, which the last micro-batch of an optimizer
    step sets. Every rank must run the same number of synchronized passes."""
    if sync or not isinstance(model, DistributedDataParallel):
        return nullcontext()
    return model.no_sync()


def gather_rows(tensor: Tensor) -> Tensor:
    """Every rank's rows in the batch's order, on every rank: rank r holds rows r, r + world,
    ... (:func:`shard`), and each rank passes a tensor of the same shape. (n, ...) ->
    (world * n, ...)."""
    world = world_size()
    if world == 1:
        return tensor
    flag = tensor.dtype == torch.bool  # gloo gathers no booleans
    local = (tensor.to(torch.uint8) if flag else tensor).contiguous()
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    rows = torch.stack(parts, dim=1).flatten(0, 1)  # row j * world + r = rank r's row j
    return rows.bool() if flag else rows
