"""The pooling geometry of one SoftPool call, shared by the ops, their derivatives and the reference.

1D and 2D pooling are 3D pooling with singleton dimensions, so every call is described by one
:class:`PoolGeometry` of (T, H, W) triples. The temperature lives here too, and only here: every
kernel call and every derivative formula takes it from this object.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PoolGeometry"]


@dataclass(frozen=True, eq=False)
class PoolGeometry:
    """Windows of a SoftPool call over ``(N, C, T, H, W)``.

    ``output_size`` entries may be symbolic (``torch.SymInt``) while tracing with dynamic shapes.
    With ``adaptive``, the windows are those of ``adaptive_avg_pool3d`` and kernel/stride/padding/
    dilation are unused (ones and zeros).
    """

    output_size: tuple
    kernel_size: tuple[int, int, int] = (1, 1, 1)
    stride: tuple[int, int, int] = (1, 1, 1)
    padding: tuple[int, int, int] = (0, 0, 0)
    dilation: tuple[int, int, int] = (1, 1, 1)
    adaptive: bool = False
    temperature: float = 1.0

    def forward_args(self) -> tuple:
        """Arguments of ``torch.ops.softpool_video.soft_pool3d`` after the input."""
        return (list(self.output_size), *self.derivative_args()[:4], self.adaptive, self.temperature)

    def derivative_args(self) -> tuple:
        """Arguments of the derivative ops after their tensors (the output size is the output's)."""
        return (
            list(self.kernel_size),
            list(self.stride),
            list(self.padding),
            list(self.dilation),
            self.adaptive,
            self.temperature,
        )

    @classmethod
    def from_op_args(cls, output_size, kernel_size, stride, padding, dilation, adaptive, temperature):
        return cls(
            tuple(output_size),
            tuple(kernel_size),
            tuple(stride),
            tuple(padding),
            tuple(dilation),
            bool(adaptive),
            float(temperature),
        )
