"""torchrun / DDP plumbing: read the launcher's environment, pick the backend, reduce and share values.

A process started by ``torchrun`` sees ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; the same variables work for multi-node runs (torchrun ``--nnodes/--node_rank`` or
``--rdzv_endpoint``) and under SLURM (``srun torchrun ...``). Without them the run is a single process
and every helper here is a no-op, so the training code never branches on "distributed or not".

Backends: ``nccl`` when the process drives a CUDA device, ``gloo`` on CPU.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
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
    "distributed_session",
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

    Idempotent: when the process group exists already (training then testing in one command), it is
    reused, never re-created (a second rendezvous on torchrun's store fails or hangs).

    Args:
        accelerator: ``cpu`` | ``gpu`` (``cuda``, ``cuda:N`` for one process) | ``auto`` (the GPU when
            one is visible). A GPU that is not there raises ``ConfigError``.
        timeout_minutes: collective timeout; evaluation of a large test set runs on rank 0's
            schedule, so keep it generous.
    """
    from softpool_video.train.config import resolve_accelerator

    use_cuda = resolve_accelerator(accelerator) == "cuda"
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if use_cuda:
        requested = str(accelerator).strip().lower()
        index = local_rank
        if world_size <= 1 and ":" in requested:
            index = int(requested.split(":", 1)[1]) if requested.split(":", 1)[1].isdigit() else -1
        if not 0 <= index < torch.cuda.device_count():
            from softpool_video.train.config import ConfigError

            given = f"LOCAL_RANK={local_rank}" if world_size > 1 else f"trainer.accelerator={accelerator}"
            raise ConfigError(
                f"{given} but only {torch.cuda.device_count()} CUDA devices are visible; start at most one "
                "process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(index)
        device = torch.device("cuda", index)
    else:
        device = torch.device("cpu")
    if world_size <= 1:
        return DistributedContext(rank=0, world_size=1, local_rank=0, device=device, backend=None)
    backend = "nccl" if use_cuda else "gloo"
    if dist.is_initialized():
        backend = dist.get_backend()
    else:
        _import_dynamo_before_the_process_group()
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


def _import_dynamo_before_the_process_group() -> None:
    """Import ``torch._dynamo`` now, before the process group exists.

    DistributedDataParallel imports it on first use. Imported while a process group exists, it keeps
    10 references to that group for good (torch 2.14), so ``destroy_process_group`` cannot free it:
    gloo's threads then run on into interpreter shutdown, where a rank now and then dies of
    SIGABRT ("terminate called without an active exception") after its run has finished.
    Imported first, it holds none, and ``destroy_process_group`` joins the threads.
    """
    import torch._dynamo  # noqa: F401


@contextlib.contextmanager
def distributed_session(
    accelerator: str = "auto", timeout_minutes: float = 30.0
) -> Iterator[DistributedContext]:
    """``init_distributed`` for the duration of a ``with`` block; the process group is destroyed at the
    end only if this block created it (an enclosing session, e.g. train-then-test, keeps it)."""
    created = not (dist.is_available() and dist.is_initialized())
    ctx = init_distributed(accelerator, timeout_minutes)
    try:
        yield ctx
    finally:
        if created:
            cleanup_distributed()


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
