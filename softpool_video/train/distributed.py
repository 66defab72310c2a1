"""torchrun / DDP plumbing: read the launcher's environment, pick the backend, reduce and share values.

A process started by ``torchrun`` sees ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; the same variables work for multi-node runs (torchrun ``--nnodes/--node_rank`` or
``--rdzv_endpoint``) and under SLURM (``srun torchrun ...``). Without them the run is a single process
and every helper here is a no-op, so the training code never branches on "distributed or not".

Backends: ``nccl`` when the process drives a CUDA device, ``gloo`` on CPU.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistributedContext",
    "all_gather_objects",
    "all_reduce_max",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "init_distributed",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job and which device it drives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: not distributed

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files, logs to the console and shows a progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(accelerator: str = "auto", timeout_minutes: float = 30.0) -> DistributedContext:
    """Set up the process group from torchrun's environment (if any) and choose the device.

    Args:
        accelerator: ``cpu`` | ``gpu`` | ``auto`` (GPU when one is visible). ``gpu`` without a
            visible CUDA device is an error.
        timeout_minutes: collective timeout; evaluation of a large test set runs on rank 0's
            schedule, so keep it generous.
    """
    if accelerator not in ("cpu", "gpu", "cuda", "auto"):
        raise ValueError(f"trainer.accelerator must be cpu, gpu or auto, got {accelerator!r}")
    use_cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError(
            f"trainer.accelerator={accelerator} but no CUDA device is visible "
            "(torch.cuda.is_available() is False); use trainer=cpu"
        )
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size <= 1:
        return DistributedContext(rank=0, world_size=1, local_rank=0, device=device, backend=None)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": device} if use_cuda else {}
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=timeout_minutes),
            **kwargs,
        )
    return DistributedContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=device, backend=backend
    )


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _collective_device() -> torch.device:
    # nccl reduces CUDA tensors only; gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over all processes (returns a new tensor on the input's device)."""
    if not _active():
        return tensor.clone()
    work = tensor.detach().to(_collective_device(), copy=True)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def all_reduce_max(value: float) -> float:
    """Maximum of a scalar over all processes (e.g. "has any rank been asked to stop?")."""
    if not _active():
        return float(value)
    work = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(work, op=dist.ReduceOp.MAX)
    return float(work.item())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process (picklable objects only)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        dist.barrier()
