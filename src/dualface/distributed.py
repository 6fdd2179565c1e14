"""Training on several processes (`torchrun`, or `train --processes`): which process this is, and decisions
all of them share. torch is imported inside the functions, so the launcher of `--processes` reads DIST_FILE
without loading torch before its workers start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Where `train --processes` workers meet (a file for torch's FileStore); torchrun's workers meet at
# MASTER_ADDR:MASTER_PORT instead.
DIST_FILE = "DUALFACE_DIST_FILE"


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    import torch.distributed as dist

    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return Distributed()
    ctx = Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if meeting := os.environ.get(DIST_FILE):
            dist.init_process_group(backend, init_method=f"file://{meeting}", rank=ctx.rank, world_size=ctx.world)
        else:
            dist.init_process_group(backend)
    return ctx


def highest(value: float, ctx: Distributed) -> float:
    """The largest of `value` over every process (numbers that steer every process alike must agree)."""
    if ctx.world == 1:
        return value
    import torch
    import torch.distributed as dist

    # NCCL reduces only tensors on the GPU: a CPU tensor there raises
    device = torch.device("cuda", ctx.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def any_rank(flag: bool, ctx: Distributed) -> bool:
    """True on every process if it is true on any (decisions that change control flow must agree)."""
    return highest(float(flag), ctx) > 0
