"""Every CPU fast path (softpool_cpu_vectorized.h) against the shared scalar body and the float64
reference, forward and backward, for each dtype and layout, with shapes proven to take that path."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import softpool_video as sv
from softpool_video.ops import cpu_kernel_variant, soft_pool3d_reference


@dataclass(frozen=True)
class PathCase:
    shape: tuple
    plan: str  # the CPU plan the contiguous input takes
    channels_last_plan: str
    kernel: tuple = (1, 1, 1)
    stride: tuple = (1, 1, 1)
    padding: tuple = (0, 0, 0)
    dilation: tuple = (1, 1, 1)
    ceil_mode: bool = False
    adaptive_output: tuple | None = None  # adaptive pooling to this size
    temperature: float = 1.0

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.adaptive_output is not None:
            return sv.adaptive_soft_pool3d(x, self.adaptive_output, temperature=self.temperature)
        return sv.soft_pool3d(
            x, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode, self.temperature
        )

    def reference(self, x: torch.Tensor, output_size) -> torch.Tensor:
        adaptive = self.adaptive_output is not None
        return soft_pool3d_reference(
            x,
            tuple(output_size),
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            adaptive,
            self.temperature,
        )

    def plan_of(self, x: torch.Tensor, output_size) -> str:
        return torch.ops.softpool_video._cpu_plan(
            x,
            list(output_size),
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.adaptive_output is not None,
        )


CASES = {
    # window reduction: global head pool, adaptive and strided, disjoint windows
    "windows_global_head": PathCase((2, 12, 8, 7, 7), "windows", "channels", adaptive_output=(1, 1, 1)),
    "windows_head_kernel": PathCase((1, 9, 4, 7, 7), "windows", "channels", kernel=(4, 7, 7)),
    "windows_adaptive_tiles": PathCase((2, 5, 8, 12, 10), "windows", "channels", adaptive_output=(2, 3, 1)),
    "windows_strided_gaps": PathCase(
        (1, 4, 9, 21, 20),
        "windows",
        "channels",
        kernel=(2, 5, 8),
        stride=(3, 6, 9),
        padding=(1, 2, 4),
        temperature=0.6,
    ),
    "windows_ceil_dilated_t": PathCase(
        (1, 4, 10, 9, 16),
        "windows",
        "channels",
        kernel=(2, 4, 8),
        stride=(4, 4, 8),
        dilation=(2, 1, 1),
        ceil_mode=True,
    ),
    # overlapping adaptive windows (in % out != 0) are not disjoint: channel lanes
    "channels_adaptive_overlap": PathCase(
        (1, 16, 5, 7, 7), "channels", "channels", adaptive_output=(2, 2, 2)
    ),
    # few channels: a channels_last row holds (position, channel) lanes, several positions per
    # vector (C=4: 16 of them); contiguous rows hold one channel
    "few_channels_stem": PathCase(
        (1, 4, 3, 12, 40), "rows", "rows", kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)
    ),
    "few_channels_dilated_ceil": PathCase(
        (1, 3, 4, 9, 50),
        "rows",
        "rows",
        kernel=(2, 2, 3),
        stride=(1, 2, 2),
        padding=(1, 1, 1),
        dilation=(1, 1, 2),
        ceil_mode=True,
        temperature=1.7,
    ),
    # contiguous rows too short for row lanes (3 outputs): channel lanes, C=16 with positions
    # grouped in pairs; channels_last: (position, channel) rows
    "channels_grouped_short_rows": PathCase(
        (1, 16, 3, 6, 6), "channels", "rows", kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)
    ),
    # contiguous: one channel block, no grouping; channels_last: rows of one position per chunk
    "channels_wide": PathCase(
        (1, 40, 2, 9, 11), "channels", "rows", kernel=(3, 3, 3), stride=(2, 2, 2), padding=(1, 1, 1)
    ),
    # two channel blocks (64 + 6), either layout
    "channels_two_blocks": PathCase(
        (1, 70, 2, 6, 7), "channels", "channels", kernel=(1, 3, 3), stride=(2, 2, 2)
    ),
    "rows_stem": PathCase(
        (1, 3, 2, 20, 40), "rows", "rows", kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)
    ),
    # rows longer than one block of 64 lanes (75 outputs), edge windows in both blocks' rows
    "rows_two_blocks": PathCase(
        (1, 2, 2, 6, 150), "rows", "rows", kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)
    ),
    # stride 3 along W (three phases per row), padding 2 and a ceil-mode window past the padding
    "rows_stride3_ceil": PathCase(
        (1, 2, 3, 7, 47),
        "rows",
        "rows",
        kernel=(2, 2, 5),
        stride=(1, 2, 3),
        padding=(0, 1, 2),
        ceil_mode=True,
        temperature=0.8,
    ),
    # stride 2 along W loads and writes back both phases of a row in one pass: an odd width
    # (22 even columns, 21 odd) with padding 2, and no padding with a ceil-mode window past the row
    "rows_stride2_odd_width": PathCase(
        (1, 2, 2, 7, 43), "rows", "rows", kernel=(1, 3, 5), stride=(1, 2, 2), padding=(0, 1, 2)
    ),
    "rows_stride2_ceil_unpadded": PathCase(
        (1, 2, 2, 7, 42), "rows", "rows", kernel=(1, 2, 3), stride=(1, 2, 2), ceil_mode=True
    ),
    # disjoint windows covering the input (k = s): the backward stores each gradient once, without
    # a zero fill (float: the tiled pass; half types: k = s = 2 has its own de-interleaving loops,
    # k = s = 3 the general ones)
    "rows_k_equals_s_2": PathCase((1, 3, 4, 6, 40), "rows", "rows", kernel=(2, 2, 2), stride=(2, 2, 2)),
    "rows_k_equals_s_3": PathCase((1, 2, 3, 6, 48), "rows", "rows", kernel=(3, 3, 3), stride=(3, 3, 3)),
    # Windows that tile W (stride = kernel along W, unpadded float NCTHW rows): the backward's one
    # contiguous pass per input row, with the windows' statistics spread over their columns.
    # Temperature 0.6, the window's two rows along H in one run:
    "rows_tiled_w_k2_temperature": PathCase(
        (2, 4, 4, 6, 40), "rows", "rows", kernel=(2, 2, 2), stride=(2, 2, 2), temperature=0.6
    ),
    # windows overlapping along T and H (their gradients add up) and tiles of 4 columns
    "rows_tiled_w_overlapping_th": PathCase(
        (1, 4, 4, 7, 48), "rows", "rows", kernel=(2, 3, 4), stride=(1, 2, 4)
    ),
    # the last column (40) lies in no tile: its gradient is 0, the rows are one run each
    "rows_tiled_w_uncovered_column": PathCase(
        (1, 2, 4, 6, 41), "rows", "rows", kernel=(2, 2, 2), stride=(2, 2, 2)
    ),
    # dilation along H: a window's rows are apart (one run per row), ceil mode clips the last window
    "rows_tiled_w_dilated_h_ceil": PathCase(
        (1, 2, 3, 9, 40),
        "rows",
        "rows",
        kernel=(1, 2, 2),
        stride=(1, 2, 2),
        dilation=(1, 2, 1),
        ceil_mode=True,
    ),
    # one-column tiles (pooling along T only)
    "rows_tiled_w_one_column": PathCase((1, 2, 6, 3, 70), "rows", "rows", kernel=(2, 1, 1), stride=(2, 1, 1)),
    # the last input column lies in no window (its gradient is 0)
    "rows_uncovered_tail": PathCase((1, 2, 2, 6, 42), "rows", "rows", kernel=(1, 2, 2), stride=(1, 2, 3)),
    # backward keeps a ring of input T-slices: 5 in flight (kernel 3, dilation 2), padding along T
    "rows_ring_dilated_t": PathCase(
        (1, 2, 9, 5, 40),
        "rows",
        "rows",
        kernel=(3, 1, 3),
        stride=(2, 1, 2),
        padding=(1, 0, 1),
        dilation=(2, 1, 1),
    ),
    # disjoint windows along T with padding: backward tasks are single output T-slices, owning
    # input slices [0, 1), [1, 3), [3, 5), [5, 6)
    "rows_t_tasks_padded": PathCase(
        (1, 3, 6, 5, 40), "rows", "rows", kernel=(2, 1, 3), stride=(2, 1, 2), padding=(1, 0, 1)
    ),
    # Output T-slice tasks whose input slices exceed 1 MB (channels_last here: 16 channels x 136 x
    # 130 padded floats) keep a ring of input rows: 5 rows reached (kernel 3, dilation 2 along H,
    # windows overlapping), two input slices per task of which the second lies in no window
    "rows_ring_of_rows_dilated_h": PathCase(
        (1, 16, 4, 136, 128),
        "rows",
        "rows",
        kernel=(1, 3, 3),
        stride=(2, 4, 2),
        padding=(0, 1, 1),
        dilation=(1, 2, 1),
    ),
    # rows between the windows along H (stride 4 > kernel 2) lie in no window: written as zeros
    "rows_ring_of_rows_h_gaps": PathCase(
        (1, 16, 2, 138, 128), "rows", "rows", kernel=(1, 2, 3), stride=(1, 4, 2), padding=(0, 1, 1)
    ),
    # T-slices 1, 2, 4, 5 lie in no window: written as zeros when the ring moves past them
    "rows_t_gaps": PathCase(
        (1, 2, 7, 4, 40), "rows", "rows", kernel=(1, 2, 2), stride=(3, 2, 2), padding=(0, 0, 1)
    ),
}

TOLERANCE = {  # (vectorised vs scalar, vs the float64 reference)
    torch.float32: (2e-5, 2e-5),
    torch.float16: (1e-2, 5e-3),
    torch.bfloat16: (4e-2, 4e-2),
}


def _forward_backward(case: PathCase, x: torch.Tensor, grad: torch.Tensor, variant: str):
    xi = x.detach().clone().requires_grad_()
    with cpu_kernel_variant(variant):
        y = case.pool(xi)
        (gx,) = torch.autograd.grad(y, xi, grad.to(y.dtype))
    return y, gx


def _input(case: PathCase, dtype, layout, scale=3.0):
    x = (torch.randn(case.shape) * scale).to(dtype)
    return x.contiguous(memory_format=torch.channels_last_3d) if layout == "channels_last" else x


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_matches_scalar_body_and_reference(name, dtype, layout):
    case = CASES[name]
    torch.manual_seed(0)
    x = _input(case, dtype, layout)
    output_size = case.pool(x.float()).shape[2:]
    expected_plan = case.plan if layout == "contiguous" else case.channels_last_plan
    assert case.plan_of(x, output_size) == expected_plan
    grad = torch.randn(x.shape[:2] + output_size)
    y_s, g_s = _forward_backward(case, x, grad, "scalar")
    y_v, g_v = _forward_backward(case, x, grad, "vectorized")
    assert y_v.dtype == dtype and g_v.dtype == dtype
    assert g_v.is_contiguous(memory_format=torch.channels_last_3d) == (layout == "channels_last")
    fast_tol, ref_tol = TOLERANCE[dtype]
    torch.testing.assert_close(y_v.float(), y_s.float(), rtol=fast_tol, atol=fast_tol)
    torch.testing.assert_close(g_v.float(), g_s.float(), rtol=fast_tol, atol=fast_tol)
    # the float64 oracle, forward and backward
    x64 = x.double().requires_grad_()
    ref = case.reference(x64, output_size)
    (ref_grad,) = torch.autograd.grad(ref, x64, grad.double())
    torch.testing.assert_close(y_v.double(), ref, rtol=ref_tol, atol=ref_tol * 4)
    torch.testing.assert_close(g_v.double(), ref_grad, rtol=ref_tol, atol=ref_tol * 4)


@pytest.mark.parametrize("name", ["windows_global_head", "windows_strided_gaps"])
def test_float64_runs_the_scalar_body_and_passes_gradcheck(name):
    case = CASES[name]
    x = torch.randn(case.shape, dtype=torch.float64)
    output_size = case.pool(x).shape[2:]
    assert case.plan_of(x, output_size) == "scalar"
    small = x[:1, :2].clone().requires_grad_()
    assert torch.autograd.gradcheck(case.pool, (small,))


@pytest.mark.parametrize(
    "name,layout",
    [
        ("windows_global_head", "contiguous"),
        ("windows_adaptive_tiles", "contiguous"),
        ("windows_strided_gaps", "contiguous"),
        ("few_channels_stem", "channels_last"),
        ("few_channels_stem", "contiguous"),  # row lanes, special values at the row edges too
        ("channels_two_blocks", "channels_last"),
        ("channels_adaptive_overlap", "contiguous"),
        ("rows_tiled_w_k2_temperature", "contiguous"),  # the tiled backward hands special windows back
        ("rows_tiled_w_overlapping_th", "contiguous"),
    ],
)
def test_special_values_and_huge_range(name, layout):
    case = CASES[name]
    torch.manual_seed(1)
    x = torch.randn(case.shape) * 3
    flat = x.view(-1)
    flat[5] = float("nan")
    flat[x.shape[2] * x.shape[3] * x.shape[4] + 3] = float("inf")  # plane 1
    x[0, 2] = float("-inf")  # a whole plane of -inf
    x[0, 3] = x[0, 3] * 1e30  # a range far beyond exp's: weights underflow to exactly 0
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    grad = torch.randn(x.shape[:2] + case.pool(x).shape[2:])
    y_s, g_s = _forward_backward(case, x, grad, "scalar")
    y_v, g_v = _forward_backward(case, x, grad, "vectorized")
    torch.testing.assert_close(y_v, y_s, rtol=2e-5, atol=2e-5, equal_nan=True)
    torch.testing.assert_close(g_v, g_s, rtol=2e-5, atol=2e-5, equal_nan=True)
    assert torch.isnan(y_v[0, 0]).any() and torch.isinf(y_v[0, 1]).any()
    assert (y_v[0, 2] == float("-inf")).all()
    assert torch.isfinite(y_v[0, 3]).all() and torch.isfinite(g_v[0, 3]).all()


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_lanes_past_a_row_add_nothing_to_its_first_columns(layout):
    """The last chunk of a long row (75 outputs: 64 + 11) computes whole blocks of 16 lanes; the
    five past the row read, and add to, the start of the row's other phase (input columns 0, 2, 4,
    6, 8). Those lanes must add nothing, whatever they read: +inf there gives them 0 * inf = NaN.
    (The windows over those columns are +inf windows, whose gradient is finite: ties share it.)"""
    case = CASES["rows_two_blocks"]
    torch.manual_seed(2)
    x = torch.randn(case.shape)
    x[..., 0:9:2] = float("inf")
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    grad = torch.randn(x.shape[:2] + case.pool(x).shape[2:])
    y_s, g_s = _forward_backward(case, x, grad, "scalar")
    y_v, g_v = _forward_backward(case, x, grad, "vectorized")
    assert torch.isfinite(g_s).all()
    torch.testing.assert_close(y_v, y_s, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(g_v, g_s, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("grad_kind", ["expanded", "transposed"])
def test_tiled_rows_read_strided_views(grad_kind):
    """The tiled backward reads grad_output through its strides (loss = y.sum() gives an expanded
    gradient, all strides 0; a transposed one steps OH along W) and input rows that are not
    adjacent in memory (a view narrower than its storage: no one run over a window's rows)."""
    case = CASES["rows_tiled_w_k2_temperature"]
    torch.manual_seed(3)
    x = (torch.randn(2, 4, 4, 6, 48) * 3)[..., 3:43]
    output_size = case.pool(x).shape[2:]
    assert x.shape[-1] == 40 and x.stride(3) == 48 and case.plan_of(x, output_size) == "rows"
    if grad_kind == "expanded":
        grad = torch.tensor(0.7).expand(x.shape[:2] + output_size)
    else:
        ot, oh, ow = output_size
        grad = torch.randn(x.shape[:2] + (ot, ow, oh)).transpose(3, 4)
        assert grad.stride(4) == output_size[1]
    gradients = {}
    for variant in ("scalar", "vectorized"):
        xi = x.detach().requires_grad_()  # the view itself (clone would make it contiguous)
        with cpu_kernel_variant(variant):
            (gradients[variant],) = torch.autograd.grad(case.pool(xi), xi, grad)
    g_s, g_v = gradients["scalar"], gradients["vectorized"]
    torch.testing.assert_close(g_v, g_s, rtol=2e-5, atol=2e-5)
    x64 = x.double().requires_grad_()
    (ref_grad,) = torch.autograd.grad(case.reference(x64, output_size), x64, grad.double())
    torch.testing.assert_close(g_v.double(), ref_grad, rtol=2e-5, atol=8e-5)


def test_windows_backward_is_deterministic_and_zero_outside_windows():
    case = CASES["windows_strided_gaps"]
    x = torch.randn(case.shape, requires_grad=True)
    assert case.plan_of(x, case.pool(x).shape[2:]) == "windows"
    y = case.pool(x)
    grad = torch.randn_like(y)
    (first,) = torch.autograd.grad(y, x, grad, retain_graph=True)
    (second,) = torch.autograd.grad(y, x, grad)
    assert torch.equal(first, second)
    # stride 9 > kernel 8 along W: input columns between windows receive exactly 0
    assert (first[..., 4::9] == 0).all() and (first[:, :, 1::3] == 0).all()


@pytest.mark.parametrize("name", ["few_channels_stem", "channels_two_blocks"])
def test_channels_last_backward_is_deterministic_across_thread_counts(name):
    """Rows (few channels) add each window's contribution in a fixed order per task, the channel
    gather (many channels) sums each input's windows in a fixed order, whatever the split over threads."""
    case = CASES[name]
    x = torch.randn(case.shape).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    y = case.pool(x)
    grad = torch.randn_like(y)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            (gx,) = torch.autograd.grad(y, x, grad, retain_graph=True)
            results.append(gx)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(results[0], r) for r in results[1:])


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_kernels_match_cpu_on_every_path(name, dtype, layout):
    """The head/adaptive cases take the warp-per-output forward on CUDA (NCTHW, >= 64 taps)."""
    case = CASES[name]
    torch.manual_seed(2)
    x = _input(case, dtype, layout)
    output_size = case.pool(x.float()).shape[2:]
    grad = torch.randn(x.shape[:2] + output_size).to(dtype)
    y_cpu, g_cpu = _forward_backward(case, x, grad, "vectorized")
    x_gpu = x.cuda().requires_grad_()
    y_gpu = case.pool(x_gpu)
    (g_gpu,) = torch.autograd.grad(y_gpu, x_gpu, grad.cuda())
    tol = {torch.float32: 2e-5, torch.float64: 1e-10, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=tol, atol=tol)
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=tol, atol=tol)
    (g_again,) = torch.autograd.grad(case.pool(x_gpu), x_gpu, grad.cuda())
    assert torch.equal(g_again, g_gpu)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["windows_global_head", "windows_strided_gaps", "few_channels_stem"])
def test_cuda_special_values_match_cpu(name):
    case = CASES[name]
    torch.manual_seed(1)
    x = torch.randn(case.shape) * 3
    x.view(-1)[5] = float("nan")
    x[0, 1, 0, 0, 0] = float("inf")
    x[0, 2] = float("-inf")
    x[0, 3] = x[0, 3] * 1e30
    y_cpu = case.pool(x)
    torch.testing.assert_close(case.pool(x.cuda()).cpu(), y_cpu, rtol=2e-5, atol=2e-5, equal_nan=True)
