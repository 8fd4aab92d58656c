"""Several processes under `torchrun`, PyTorch's own launcher: the process group (gloo on CPUs,
NCCL on GPUs), each rank's device, and the few agreements a run needs. Outside torchrun every
function is a no-op for one process of rank 0, so callers need no special case.

    torchrun --nproc_per_node=2 --no-python gz train ...      # one node, two processes
    torchrun --nnodes=2 --node_rank=R --rdzv-endpoint=HOST:29500 --nproc_per_node=4 --no-python gz train ...
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether this process is one of several started by torchrun."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1


def device_for(device: torch.device) -> torch.device:
    """This rank's device: its own GPU (LOCAL_RANK) when `device` is CUDA, else `device`."""
    if device.type == "cuda" and launched():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def start(device: torch.device) -> bool:
    """Join torchrun's process group (NCCL for CUDA, gloo otherwise) unless already in it; True
    when this call started it (and should `finish` it)."""
    if not launched() or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def finish(started: bool) -> None:
    """Leave the process group this process `start`ed, all ranks together (a rank that tears its
    connections down while another still uses them can abort)."""
    if started and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. building a cache), then the others (reading it)."""
    if rank() != 0:
        barrier()
    yield
    if rank() == 0:
        barrier()


def agreed_max(value: float, device: torch.device) -> float:
    """The largest `value` over the ranks (every rank calls it): one decision for all, e.g. when a
    time budget ends."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())
