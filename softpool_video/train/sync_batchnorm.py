"""Synchronized BatchNorm that also works on CPU (gloo), so a DDP run on CPU matches one process.

``torch.nn.SyncBatchNorm`` refuses CPU tensors. Without synchronization each process normalizes with
the statistics of its own shard, and a 2-process run no longer computes what one process computes on
the same global batch. :class:`CPUSyncBatchNorm` all-reduces the batch statistics with a
differentiable all-reduce (its backward all-reduces the gradients of the statistics, exactly what
SyncBatchNorm's backward does).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["CPUSyncBatchNorm", "convert_sync_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over all processes; the gradient of every process's input is the sum of all output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def differentiable_all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over ``(N, C, ...)`` with statistics over the batch of every process."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        synced = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not synced:
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        x = input.float()
        local_count = torch.tensor([x.numel() // channels], dtype=x.dtype, device=x.device)
        # Two passes (mean, then centred second moment) are as exact as the single-process reduction.
        sums = differentiable_all_reduce(torch.cat([x.sum(dim=dims), local_count]))
        count = sums[-1]
        mean = sums[:-1] / count
        shape = [1, channels] + [1] * (input.dim() - 2)
        centred = x - mean.reshape(shape)
        var = differentiable_all_reduce((centred * centred).sum(dim=dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # cumulative moving average, like nn.BatchNorm
                    momentum = 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - momentum).add_(
                    mean.detach().to(self.running_mean.dtype), alpha=momentum
                )
                self.running_var.mul_(1 - momentum).add_(
                    unbiased.detach().to(self.running_var.dtype), alpha=momentum
                )
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm by a synchronized one: ``nn.SyncBatchNorm`` on CUDA, ours on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    converted = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        converted = CPUSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            with torch.no_grad():
                converted.weight = module.weight
                converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.training = module.training
    for name, child in module.named_children():
        converted.add_module(name, convert_sync_batchnorm(child, device))
    return converted
