"""Repeated pooling, the anti-aliased references, upsampling back and the display helper."""

from __future__ import annotations

import pytest
import torch

from softpool_video.visualize.downsample import (
    check_levels,
    covered_size,
    enlarge_for_display,
    pool_levels,
    pool_video,
    reference_downsample,
    sorted_methods,
    upsample_to,
)
from softpool_video.visualize.retention import format_retention_table, retention_rows


@pytest.mark.parametrize("kernel", [(2, 2, 2), (1, 2, 2), (2, 3, 2)])
@pytest.mark.parametrize("method", ["max", "avg", "soft"])
def test_pool_levels_shapes_drop_incomplete_windows(method, kernel):
    video = torch.rand(3, 17, 40, 33)
    levels = pool_levels(video, method, kernel, levels=2)
    assert len(levels) == 2
    for level, pooled in enumerate(levels, start=1):
        expected = tuple(s // k**level for s, k in zip((17, 40, 33), kernel))
        assert pooled.shape == (3, *expected)
    # batched input keeps N
    assert pool_video(video.unsqueeze(0).repeat(2, 1, 1, 1, 1), method, kernel).shape[0] == 2


def test_repeated_avg_pooling_equals_the_box_reference():
    video = torch.rand(3, 16, 36, 44, dtype=torch.float64)
    for level, pooled in enumerate(pool_levels(video, "avg", (2, 2, 2), 3), start=1):
        reference = reference_downsample(video, (2**level,) * 3, "box")
        torch.testing.assert_close(pooled, reference)


def test_softpool_lies_between_avg_and_max_in_every_window():
    # softmax weights grow with the value, so the weighted mean is >= the plain mean
    video = torch.rand(3, 8, 16, 16)
    soft = pool_video(video, "soft", 2)
    assert torch.all(soft <= pool_video(video, "max", 2) + 1e-6)
    assert torch.all(soft >= pool_video(video, "avg", 2) - 1e-6)


def test_softpool_temperature_moves_between_max_and_avg():
    video = torch.rand(3, 8, 16, 16)
    cold = pool_video(video, "soft", 2, temperature=1e-3)
    hot = pool_video(video, "soft", 2, temperature=1e4)
    torch.testing.assert_close(cold, pool_video(video, "max", 2), atol=1e-3, rtol=0)
    torch.testing.assert_close(hot, pool_video(video, "avg", 2), atol=1e-4, rtol=0)


def test_triangle_reference_preserves_constants_and_differs_from_box():
    constant = torch.full((3, 12, 20, 24), 0.25)
    torch.testing.assert_close(
        reference_downsample(constant, (2, 4, 4), "triangle"), torch.full((3, 6, 5, 6), 0.25)
    )
    video = torch.rand(3, 12, 20, 24)
    box, triangle = (reference_downsample(video, 2, kind) for kind in ("box", "triangle"))
    assert box.shape == triangle.shape == (3, 6, 10, 12)
    assert not torch.allclose(box, triangle, atol=1e-3)
    with pytest.raises(ValueError, match="reference must be one of"):
        reference_downsample(video, 2, "gaussian")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_triangle_reference_in_one_dimension_is_the_1_3_3_1_filter(axis):
    # antialiased linear 2x downsampling: interior outputs weight the four nearest inputs 1, 3, 3, 1
    # (also checks 1-pixel axes, where torch's antialiased kernel alone goes wrong)
    signal = torch.arange(16, dtype=torch.float64) ** 2
    shape, factor = [1, 1, 1], [1, 1, 1]
    shape[axis], factor[axis] = 16, 2
    out = reference_downsample(signal.view(1, *shape), tuple(factor), "triangle").flatten()
    assert out.numel() == 8
    for i in range(1, 7):
        window = signal[2 * i - 1 : 2 * i + 3]
        assert out[i].item() == pytest.approx((window * torch.tensor([1, 3, 3, 1.0])).sum().item() / 8)


def test_upsample_back_and_covered_size():
    assert covered_size((17, 40, 33), (2, 2, 2), 2) == (16, 40, 32)
    pooled = torch.full((3, 4, 10, 8), 0.7)
    up = upsample_to(pooled, (16, 40, 32))
    assert up.shape == (3, 16, 40, 32)
    torch.testing.assert_close(up, torch.full_like(up, 0.7))


def test_enlarge_for_display_holds_frames_and_enlarges_pixels():
    pooled = torch.rand(3, 3, 2, 2)
    shown = enlarge_for_display(pooled, time_factor=4, size=(6, 8))
    assert shown.shape == (3, 12, 6, 8)
    for t in range(12):
        # frame t of the display is pooled frame t // 4, each pixel a 3x4 block
        block = pooled[:, t // 4].repeat_interleave(3, dim=-2).repeat_interleave(4, dim=-1)
        torch.testing.assert_close(shown[:, t], block)


def test_levels_and_methods_are_checked_with_clear_messages():
    with pytest.raises(ValueError, match=r"levels=4 with kernel=\(2, 2, 2\) needs at least 16 frames"):
        check_levels((12, 64, 64), (2, 2, 2), 4)
    with pytest.raises(ValueError, match="levels must be a positive int"):
        check_levels((12, 64, 64), (2, 2, 2), 0)
    with pytest.raises(ValueError, match="kernel must be an int or 3 positive ints"):
        pool_video(torch.rand(3, 4, 8, 8), "max", (2, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        pool_video(torch.rand(3, 4, 8, 8), "median", 2)
    assert sorted_methods(["soft", "max", "avg", "soft"]) == ["max", "avg", "soft"]
    with pytest.raises(ValueError, match="methods must be a non-empty subset"):
        sorted_methods(["lp"])


def test_retention_rows_order_sizes_and_what_they_measure():
    video = torch.rand(3, 8, 24, 24)
    pooled = {m: pool_levels(video, m, 2, 2) for m in ("soft", "avg", "max")}
    rows = retention_rows(video, pooled, (2, 2, 2))
    assert [(r.method, r.level) for r in rows] == [(m, lv) for m in ("max", "avg", "soft") for lv in (1, 2)]
    assert (rows[0].frames, rows[0].height, rows[0].width) == (4, 12, 12)
    avg_level1 = rows[2]
    assert avg_level1.psnr_down > 100 and avg_level1.ssim_down == pytest.approx(1.0, abs=1e-6)
    # on white noise, the mean is the best constant per window: avg reconstructs better than max
    assert rows[2].psnr_up > rows[0].psnr_up
    table = format_retention_table(rows)
    assert "PSNR vs box" in table and len(table.splitlines()) == 2 + len(rows)
    with pytest.raises(ValueError, match="pooled max level 1 has shape"):
        retention_rows(video, {"max": pool_levels(video, "max", (1, 2, 2), 1)}, (2, 2, 2))
