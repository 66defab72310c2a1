"""SoftPool modules: drop-in replacements for nn.MaxPool{1,2,3}d / nn.AdaptiveAvgPool{1,2,3}d.

Every module takes ``temperature`` (a fixed positive number, the paper's 1.0 by default) and, with
``learn_temperature=True``, learns it instead: the module then owns a parameter ``log_temperature``
(one value, or ``num_channels`` values, one per channel) initialised to ``log(temperature)``, so the
temperature ``exp(log_temperature)`` stays positive whatever the optimiser does. ``module.temperature``
is the current temperature: the number, or a tensor (0-d or ``(C,)``) of the learned values.
"""

from __future__ import annotations

import math

import torch
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


class _TemperatureMixin(nn.Module):
    """The temperature of a SoftPool module: fixed (a number) or learned (``log_temperature``)."""

    def _init_temperature(self, temperature, learn_temperature: bool, num_channels: int | None) -> None:
        name = type(self).__name__
        if num_channels is not None and not learn_temperature:
            raise ValueError(
                f"{name}: num_channels={num_channels!r} is only used with learn_temperature=True"
            )
        if not learn_temperature:
            self.register_parameter("log_temperature", None)
            self._fixed_temperature = temperature
            return
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"{name}: temperature must be a number (the initial value), got {temperature!r}")
        if not (0 < temperature < math.inf):
            raise ValueError(f"{name}: temperature must be a finite number > 0, got {temperature!r}")
        if num_channels is not None and (
            isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1
        ):
            raise ValueError(f"{name}: num_channels must be a positive int or None, got {num_channels!r}")
        shape = () if num_channels is None else (num_channels,)
        self.log_temperature = nn.Parameter(torch.full(shape, math.log(float(temperature))))

    @property
    def learn_temperature(self) -> bool:
        return self.log_temperature is not None

    @property
    def num_channels(self) -> int | None:
        """Channels of a per-channel learned temperature, else ``None``."""
        if self.log_temperature is None or self.log_temperature.dim() == 0:
            return None
        return self.log_temperature.shape[0]

    @property
    def temperature(self):
        """The current temperature: the fixed number, or ``exp(log_temperature)`` (0-d or ``(C,)``)."""
        if self.log_temperature is None:
            return self._fixed_temperature
        return self.log_temperature.exp()

    @temperature.setter
    def temperature(self, value) -> None:
        if self.log_temperature is None:
            self._fixed_temperature = value
            return
        value = torch.as_tensor(value, dtype=self.log_temperature.dtype, device=self.log_temperature.device)
        if not bool((value > 0).all() and value.isfinite().all()):
            raise ValueError(
                f"{type(self).__name__}: temperature must be finite and > 0, got {value.tolist()}"
            )
        with torch.no_grad():
            self.log_temperature.copy_(value.log().expand_as(self.log_temperature))

    def _temperature_repr(self) -> str:
        if self.log_temperature is None:
            return "" if self._fixed_temperature == 1.0 else f", temperature={self._fixed_temperature}"
        channels = "" if self.num_channels is None else f", num_channels={self.num_channels}"
        return f", learn_temperature=True{channels}"


class _SoftPoolNd(_TemperatureMixin):
    _function = None  # set by subclasses

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode=False,
        temperature=1.0,
        learn_temperature: bool = False,
        num_channels: int | None = None,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode
        self._init_temperature(temperature, learn_temperature, num_channels)

    def forward(self, x):
        return type(self)._function(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.temperature
        )

    def extra_repr(self) -> str:
        text = (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )
        return text + self._temperature_repr()


class SoftPool1d(_SoftPoolNd):
    """SoftPool over ``(N, C, L)``; see :func:`softpool_video.soft_pool1d`."""

    _function = staticmethod(pooling.soft_pool1d)


class SoftPool2d(_SoftPoolNd):
    """SoftPool over ``(N, C, H, W)``; see :func:`softpool_video.soft_pool2d`."""

    _function = staticmethod(pooling.soft_pool2d)


class SoftPool3d(_SoftPoolNd):
    """SoftPool over ``(N, C, T, H, W)``; see :func:`softpool_video.soft_pool3d`."""

    _function = staticmethod(pooling.soft_pool3d)


class _AdaptiveSoftPoolNd(_TemperatureMixin):
    _function = None

    def __init__(
        self, output_size, temperature=1.0, learn_temperature: bool = False, num_channels: int | None = None
    ):
        super().__init__()
        self.output_size = output_size
        self._init_temperature(temperature, learn_temperature, num_channels)

    def forward(self, x):
        return type(self)._function(x, self.output_size, self.temperature)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}" + self._temperature_repr()


class AdaptiveSoftPool1d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over ``(N, C, L)``; see :func:`softpool_video.adaptive_soft_pool1d`."""

    _function = staticmethod(pooling.adaptive_soft_pool1d)


class AdaptiveSoftPool2d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over ``(N, C, H, W)``; see :func:`softpool_video.adaptive_soft_pool2d`."""

    _function = staticmethod(pooling.adaptive_soft_pool2d)


class AdaptiveSoftPool3d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over ``(N, C, T, H, W)``; see :func:`softpool_video.adaptive_soft_pool3d`."""

    _function = staticmethod(pooling.adaptive_soft_pool3d)
