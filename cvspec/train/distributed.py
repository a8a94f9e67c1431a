"""Data-parallel training across processes (torchrun): who this process is, and the collectives.

torchrun (or a launcher that sets the same variables: RANK, LOCAL_RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) starts one process per GPU; each trains on its
shard of every epoch and DistributedDataParallel averages the gradients. Rank 0 alone writes the
run folder. On a machine without GPUs the processes use the gloo backend on the CPU, which is
how the tests run it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple


class World(NamedTuple):
    """This process's place among the training processes."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def main(self) -> bool:
        """True for the process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.size > 1


def world() -> World:
    """The world torchrun describes in the environment; one process when it describes none."""
    env = os.environ

    def number(name: str, default: int) -> int:
        value = env.get(name, "")
        return int(value) if value.isdigit() else default

    size = number("WORLD_SIZE", 1)
    return World(
        number("RANK", 0),
        number("LOCAL_RANK", 0),
        size,
        number("LOCAL_WORLD_SIZE", size),
    )


def start(w: World, cuda: bool) -> None:
    """Join the process group (NCCL on GPUs, gloo on CPUs); nothing to do for one process."""
    if not w.distributed:
        return
    import torch
    import torch.distributed as dist

    if cuda:
        torch.cuda.set_device(w.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")


def stop(w: World) -> None:
    """Leave the process group once every process got here."""
    if not w.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sum_all(w: World, values: Sequence[float]) -> list[float]:
    """Element-wise sums over every process (the values themselves for one process)."""
    if not w.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.cpu()]


def wrap(model: Any, w: World, cuda: bool) -> Any:
    """The model under DistributedDataParallel when several processes train (it broadcasts
    rank 0's weights at construction, so every replica starts equal)."""
    if not w.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[w.local_rank] if cuda else None)


def unwrap(model: Any) -> Any:
    """The plain module inside a DistributedDataParallel wrapper (checkpoints hold its weights)."""
    return getattr(model, "module", model)
