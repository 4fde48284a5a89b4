"""Data-parallel training across processes started by ``torchrun`` (gloo on CPU, NCCL on GPU).

The GAN phases each train a different subset of networks, which DistributedDataParallel's
single-reducer model handles badly (unused parameters, toggled ``requires_grad``). So, as in
StyleGAN2-ADA, every process runs the same step on its slice of the global batch and the gradients
of each phase are averaged with one coalesced all-reduce before the optimizer step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_slice(self, global_batch: int) -> slice:
        if global_batch % self.world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by {self.world_size} processes")
        per_rank = global_batch // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def init_from_environment(device: str | None = None) -> ProcessGroup:
    """One process: nothing to set up. Under torchrun (WORLD_SIZE > 1): join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if world_size == 1:
        return ProcessGroup(device=dev)
    rank = int(os.environ["RANK"])
    if dev.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return ProcessGroup(rank=rank, world_size=world_size, device=dev)


def average_gradients(parameters, group: ProcessGroup) -> None:
    if group.world_size == 1:
        return
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= group.world_size
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def broadcast_parameters(module: torch.nn.Module, group: ProcessGroup) -> None:
    """Start every process from rank 0's weights."""
    if group.world_size == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def global_mean(value: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """Differentiable mean over processes of a per-process mean (equal batch per process)."""
    if group.world_size == 1:
        return value
    import torch.distributed.nn.functional as dnn

    return dnn.all_reduce(value) / group.world_size
