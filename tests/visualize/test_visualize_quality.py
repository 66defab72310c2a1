"""PSNR and SSIM against identities and hand computations (Wang et al. 2004 constants)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softpool_video.visualize.quality import gaussian_window, psnr, ssim

C1, C2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2


def gaussian_2d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The SSIM window written out independently: normalised exp(-(i^2 + j^2) / (2 sigma^2))."""
    coords = np.arange(size) - (size - 1) / 2
    grid = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sigma**2))
    return grid / grid.sum()


def ssim_by_hand(x: np.ndarray, y: np.ndarray, size: int = 11) -> float:
    """Direct SSIM of two 2-D planes: loop over every valid window, weighted statistics."""
    w = gaussian_2d(size)
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append(
                (2 * mu_a * mu_b + C1) * (2 * cov + C2) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))
            )
    return float(np.mean(values))


def test_psnr_identity_is_infinite():
    x = torch.rand(3, 4, 16, 16)
    assert psnr(x, x) == math.inf


def test_psnr_of_a_known_mse():
    # MSE 0.01 with peak 1 -> 10 log10(1 / 0.01) = 20 dB
    x = torch.zeros(3, 2, 8, 8)
    assert psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-5)
    # half the elements off by 0.2 -> MSE 0.02 -> 16.9897 dB
    y = x.clone()
    y[:, :, :, :4] = 0.2
    assert psnr(x, y) == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-5)


def test_psnr_of_uint8_frames_does_not_wrap_around():
    x = torch.full((3, 2, 8, 8), 10, dtype=torch.uint8)
    y = torch.full((3, 2, 8, 8), 15, dtype=torch.uint8)
    # MSE 25 with peak 255: 10 log10(255^2 / 25) = 34.151 dB, in both orders
    expected = 10 * math.log10(255**2 / 25)
    assert psnr(x, y, data_range=255) == pytest.approx(expected, abs=1e-6)
    assert psnr(y, x, data_range=255) == pytest.approx(expected, abs=1e-6)


def test_ssim_identity_is_one():
    x = torch.rand(3, 5, 32, 24)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)


def test_ssim_window_matches_the_published_gaussian():
    window = gaussian_window(11, 1.5)
    assert window.sum().item() == pytest.approx(1.0)
    assert torch.equal(window, window.flip(0))
    # centre of fspecial('gaussian', 11, 1.5) in Wang et al.'s reference code: 0.0707
    assert (window[5] ** 2).item() == pytest.approx(0.070762, abs=1e-6)
    np.testing.assert_allclose(torch.outer(window, window).numpy(), gaussian_2d(), atol=1e-12)


def test_ssim_of_constant_planes_matches_the_luminance_formula():
    # no variance: the contrast-structure term is C2 / C2 = 1 and SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.3, 0.5
    x = torch.full((2, 3, 20, 20), a, dtype=torch.float64)
    y = torch.full((2, 3, 20, 20), b, dtype=torch.float64)
    assert ssim(x, y) == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), abs=1e-12)


def test_ssim_of_a_constant_offset_on_one_window():
    # 11x11 plane = exactly one window: y = x + c keeps the variance, so only the luminance term moves
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.6, size=(11, 11))
    c = 0.15
    w = gaussian_2d()
    mu = (w * x).sum()
    expected = (2 * mu * (mu + c) + C1) / (mu**2 + (mu + c) ** 2 + C1)
    got = ssim(torch.from_numpy(x), torch.from_numpy(x + c))
    assert got == pytest.approx(expected, abs=1e-12)


def test_ssim_of_a_contrast_change_on_one_window():
    # y = k x: mu_y = k mu, var_y = k^2 var, cov = k var
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 0.8, size=(11, 11))
    k = 0.5
    w = gaussian_2d()
    mu = (w * x).sum()
    var = (w * (x - mu) ** 2).sum()
    luminance = (2 * k * mu * mu + C1) / ((1 + k * k) * mu * mu + C1)
    contrast_structure = (2 * k * var + C2) / ((1 + k * k) * var + C2)
    got = ssim(torch.from_numpy(x), torch.from_numpy(k * x))
    assert got == pytest.approx(luminance * contrast_structure, abs=1e-12)


def test_ssim_matches_a_direct_window_loop_and_averages_planes():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(2, 18, 23))
    y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1)
    expected = np.mean([ssim_by_hand(x[i], y[i]) for i in range(2)])
    assert ssim(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, abs=1e-10)
    # float32 input gives the same value to float32 accuracy
    assert ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(expected, abs=1e-5)


def test_ssim_on_planes_smaller_than_the_window_uses_the_largest_odd_window():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(8, 9))
    y = np.clip(x + 0.05 * rng.normal(size=x.shape), 0, 1)
    expected = ssim_by_hand(x, y, size=7)
    assert ssim(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, abs=1e-10)


def test_ssim_is_symmetric_and_falls_with_noise():
    x = torch.rand(3, 2, 24, 24)
    slightly = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    heavily = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert ssim(x, slightly) == pytest.approx(ssim(slightly, x), abs=1e-6)
    assert 1.0 > ssim(x, slightly) > ssim(x, heavily)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_metrics_reject_mismatched_shapes(metric):
    with pytest.raises(ValueError, match=r"same shape.*\(3, 2, 8, 8\).*\(3, 2, 8, 9\)"):
        metric(torch.rand(3, 2, 8, 8), torch.rand(3, 2, 8, 9))
    with pytest.raises(ValueError, match="data_range"):
        metric(torch.rand(2, 8, 8), torch.rand(2, 8, 8), data_range=0)
