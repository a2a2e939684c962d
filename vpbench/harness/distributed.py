"""Data parallelism through PyTorch's own engine: ``torchrun --nproc_per_node N -m vpbench.cli run ...``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; every process trains on its slice of the same global
batch (the preset's batch size), DistributedDataParallel averages the gradients, and only rank 0
writes results. NCCL on CUDA, gloo on CPU; several nodes join through torchrun's rendezvous.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

from vpbench.errors import UserError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (a single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def planned() -> Dist:
    """This process's place as torchrun describes it (RANK, WORLD_SIZE, LOCAL_RANK), before joining."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def from_environment(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes, if any; returns this process's device."""
    dist = planned()
    if not dist.active:
        return dist, device
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist, device


def check_batch(batch_size: int, dist: Dist) -> None:
    if batch_size % dist.world:
        raise UserError(
            f"train.batch_size={batch_size} cannot be split over {dist.world} processes; "
            "use a number of processes that divides it, or --set train.batch_size=..."
        )


def mean_across(value: torch.Tensor, dist: Dist) -> torch.Tensor:
    """The mean of a scalar over all processes (itself when alone)."""
    if not dist.active:
        return value
    value = value.detach().clone()
    torch_dist.all_reduce(value)
    return value / dist.world


def broadcast(obj: Any, dist: Dist) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not dist.active:
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(dist: Dist) -> None:
    if dist.active:
        torch_dist.barrier()


def finish(dist: Dist) -> None:
    """Leave the process group at the end of the job."""
    if dist.active and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def wrap(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when running in a group (BatchNorm synced on CUDA)."""
    if not dist.active:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
