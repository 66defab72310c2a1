"""SoftPool modules: drop-in replacements for nn.MaxPool{1,2,3}d / nn.AdaptiveAvgPool{1,2,3}d."""

from __future__ import annotations

from torch import nn

from softpool_video.ops import pooling

__all__ = [
    "AdaptiveSoftPool1d",
    "AdaptiveSoftPool2d",
    "AdaptiveSoftPool3d",
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool3d",
]


class _SoftPoolNd(nn.Module):
    _function = None  # set by subclasses

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, temperature=1.0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode
        self.temperature = temperature

    def forward(self, x):
        return type(self)._function(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.temperature
        )

    def extra_repr(self) -> str:
        text = (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )
        return text if self.temperature == 1.0 else f"{text}, temperature={self.temperature}"


class SoftPool1d(_SoftPoolNd):
    """SoftPool over ``(N, C, L)``; see :func:`softpool_video.soft_pool1d`."""

    _function = staticmethod(pooling.soft_pool1d)


class SoftPool2d(_SoftPoolNd):
    """SoftPool over ``(N, C, H, W)``; see :func:`softpool_video.soft_pool2d`."""

    _function = staticmethod(pooling.soft_pool2d)


class SoftPool3d(_SoftPoolNd):
    """SoftPool over ``(N, C, T, H, W)``; see :func:`softpool_video.soft_pool3d`."""

    _function = staticmethod(pooling.soft_pool3d)


class _AdaptiveSoftPoolNd(nn.Module):
    _function = None

    def __init__(self, output_size, temperature=1.0):
        super().__init__()
        self.output_size = output_size
        self.temperature = temperature

    def forward(self, x):
        return type(self)._function(x, self.output_size, self.temperature)

    def extra_repr(self) -> str:
        text = f"output_size={self.output_size}"
        return text if self.temperature == 1.0 else f"{text}, temperature={self.temperature}"


class AdaptiveSoftPool1d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over ``(N, C, L)``; see :func:`softpool_video.adaptive_soft_pool1d`."""

    _function = staticmethod(pooling.adaptive_soft_pool1d)


class AdaptiveSoftPool2d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over ``(N, C, H, W)``; see :func:`softpool_video.adaptive_soft_pool2d`."""

    _function = staticmethod(pooling.adaptive_soft_pool2d)


class AdaptiveSoftPool3d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over ``(N, C, T, H, W)``; see :func:`softpool_video.adaptive_soft_pool3d`."""

    _function = staticmethod(pooling.adaptive_soft_pool3d)
