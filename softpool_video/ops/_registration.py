"""Python-side registrations of the compiled SoftPool ops: fake kernels and autograd.

The ops themselves (schemas and CPU/CUDA kernels) come from ``softpool_video._C``, loaded by
``_extension.py``; this module adds what torch.compile, torch.export and autograd need.
"""

from __future__ import annotations

import contextlib

import torch

from softpool_video.ops._extension import EXTENSION_ERROR, HAVE_EXTENSION


@contextlib.contextmanager
def cpu_kernel_variant(variant: str):
    """Force the CPU kernels onto ``"scalar"`` (the shared body the GPU runs) or ``"vectorized"``.

    Used by the tests to check the vectorised fast path against the shared scalar body.
    """
    if variant not in ("scalar", "vectorized"):
        raise ValueError(f"variant must be 'scalar' or 'vectorized', got {variant!r}")
    if not HAVE_EXTENSION:
        raise RuntimeError(f"softpool_video._C is not available: {EXTENSION_ERROR}")
    previous = torch.ops.softpool_video._set_cpu_vectorized(variant == "vectorized")
    try:
        yield
    finally:
        torch.ops.softpool_video._set_cpu_vectorized(previous)


def output_is_channels_last(x: torch.Tensor) -> bool:
    """The layout rule of the kernels (softpool_launch.h: use_channels_last)."""
    return x.dim() == 5 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)


def statistic_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


if HAVE_EXTENSION:

    @torch.library.register_fake("softpool_video::soft_pool3d")
    def _soft_pool3d_fake(x, output_size, kernel_size, stride, padding, dilation, adaptive, temperature):
        shape = (*x.shape[:2], *output_size)
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        output = x.new_empty(shape).contiguous(memory_format=fmt)
        stat = x.new_empty(shape, dtype=statistic_dtype(x.dtype)).contiguous(memory_format=fmt)
        return output, stat

    @torch.library.register_fake("softpool_video::soft_pool3d_backward")
    def _soft_pool3d_backward_fake(
        grad_output, x, output, log_normalizer, kernel_size, stride, padding, dilation, adaptive, temperature
    ):
        fmt = torch.channels_last_3d if output_is_channels_last(x) else torch.contiguous_format
        return x.new_empty(x.shape).contiguous(memory_format=fmt)

    def _setup_context(ctx, inputs, output):
        x, _output_size, kernel_size, stride, padding, dilation, adaptive, temperature = inputs
        pooled, log_normalizer = output
        # Backward needs the input, the output and one statistic per window, nothing input-sized.
        ctx.save_for_backward(x, pooled, log_normalizer)
        ctx.geometry = (kernel_size, stride, padding, dilation, adaptive, temperature)
        ctx.mark_non_differentiable(log_normalizer)

    def _backward(ctx, grad_output, _grad_log_normalizer):
        x, pooled, log_normalizer = ctx.saved_tensors
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.softpool_video.soft_pool3d_backward(
                grad_output, x, pooled, log_normalizer, *ctx.geometry
            )
        return grad_input, None, None, None, None, None, None, None

    torch.library.register_autograd("softpool_video::soft_pool3d", _backward, setup_context=_setup_context)
