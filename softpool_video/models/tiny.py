"""``r2plus1d_tiny``: a slim R(2+1)D that trains on a CPU in minutes (demo, tests, benchmarks).

Designed for 8-16 frame clips of 64-112 pixels. With the default ``width=32`` it has about 0.45 M
parameters. Shapes for an ``(N, 3, 8, 64, 64)`` clip::

    stem   (2+1)D conv, stride (1, 2, 2)           -> (N, 32,  8, 32, 32)
    pool   3x3x3, stride 2 (T and H, W)             -> (N, 32,  4, 16, 16)   stem pool
    stage1 (2+1)D residual block                    -> (N, 32,  4, 16, 16)
    stage2 (2+1)D residual block, stride (2, 2, 2)  -> (N, 64,  2,  8,  8)
    stage3 (2+1)D residual block, stride (1, 2, 2)  -> (N, 128, 2,  4,  4)
    head   adaptive pool to 1x1x1, dropout, linear  -> (N, num_classes)        head pool

It is built with a max stem pool and an average head pool (the ``"original"`` pools) so that
``build_model(..., pooling=...)`` compares kinds on the same network; the default is SoftPool in both.
"""

from __future__ import annotations

import torch
from torch import nn

from softpool_video.models.registry import BuiltModel, register_model


class Conv2Plus1d(nn.Sequential):
    """A k x k spatial convolution, BN, ReLU, then a 3-frame temporal convolution: ``(N, C_in, T, H, W)``
    -> ``(N, C_out, T / temporal_stride, H / spatial_stride, W / spatial_stride)``.

    Factorising the 3D kernel adds a nonlinearity between space and time and costs fewer weights.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        spatial_kernel: int = 3,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
    ):
        mid_channels = mid_channels or out_channels
        pad = spatial_kernel // 2
        super().__init__(
            nn.Conv3d(
                in_channels,
                mid_channels,
                kernel_size=(1, spatial_kernel, spatial_kernel),
                stride=(1, spatial_stride, spatial_stride),
                padding=(0, pad, pad),
                bias=False,
            ),
            nn.BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                mid_channels,
                out_channels,
                kernel_size=(3, 1, 1),
                stride=(temporal_stride, 1, 1),
                padding=(1, 0, 0),
                bias=False,
            ),
        )


class ResidualBlock2Plus1d(nn.Module):
    """Two (2+1)D convolutions with BN and a residual connection (1x1x1 projection when the shape changes)."""

    def __init__(
        self, in_channels: int, out_channels: int, spatial_stride: int = 1, temporal_stride: int = 1
    ):
        super().__init__()
        self.conv1 = Conv2Plus1d(
            in_channels, out_channels, spatial_stride=spatial_stride, temporal_stride=temporal_stride
        )
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = Conv2Plus1d(out_channels, out_channels)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if in_channels != out_channels or spatial_stride != 1 or temporal_stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(
                    in_channels,
                    out_channels,
                    kernel_size=1,
                    stride=(temporal_stride, spatial_stride, spatial_stride),
                    bias=False,
                ),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TinyR2Plus1d(nn.Module):
    """Slim R(2+1)D classifier: ``(N, 3, T, H, W)`` -> logits ``(N, num_classes)``; any T >= 1, H, W >= 8."""

    def __init__(self, num_classes: int, width: int = 32, dropout_rate: float = 0.2):
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(
            Conv2Plus1d(
                3, widths[0], mid_channels=max(widths[0] * 3 // 4, 8), spatial_kernel=5, spatial_stride=2
            ),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
            # Pools time as well as space: early frames are redundant, and it quarters the cost downstream.
            nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
        )
        self.stage1 = ResidualBlock2Plus1d(widths[0], widths[0])
        self.stage2 = ResidualBlock2Plus1d(widths[0], widths[1], spatial_stride=2, temporal_stride=2)
        self.stage3 = ResidualBlock2Plus1d(widths[1], widths[2], spatial_stride=2)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(widths[2], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, ResidualBlock2Plus1d):
                # Each residual branch starts as the identity: deep-but-small nets train faster.
                nn.init.zeros_(module.bn2.weight)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage3(self.stage2(self.stage1(x)))
        x = self.pool(x).flatten(1)
        return self.fc(self.dropout(x))


@register_model(
    "r2plus1d_tiny",
    num_frames=8,
    crop_size=64,
    description="Slim R(2+1)D (~0.45 M parameters) for CPU training: a 3x3x3 stem pool and an adaptive "
    "head pool.",
)
def r2plus1d_tiny(
    *, num_classes: int, num_frames: int, crop_size: int, width: int = 32, dropout_rate: float = 0.2
) -> BuiltModel:
    if width < 4:
        raise ValueError(f"r2plus1d_tiny: width must be >= 4, got {width}")
    model = TinyR2Plus1d(num_classes, width=width, dropout_rate=dropout_rate)
    return BuiltModel(model, stem_pools=("stem.3",), head_pools=("pool",))
