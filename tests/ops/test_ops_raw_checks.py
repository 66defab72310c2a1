"""The raw ops torch.ops.softpool_video.* reject every bad argument with a RuntimeError that names it,
in forward and in both derivative ops, instead of crashing the process or touching memory out of
bounds. Calls that once crashed run in a subprocess, so a crash fails the test instead of pytest.
Also: empty batches and channels give empty results, as F.max_pool3d does for N = 0."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import softpool_video as sv

OPS = torch.ops.softpool_video
GEOMETRY = ([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False, 1.0)  # kernel, stride, padding, dilation, ...
ADAPTIVE = ([1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1], True, 1.0)


def _forward(x, output_size=(2, 2, 2), geometry=GEOMETRY):
    return OPS.soft_pool3d(x, list(output_size), *geometry)


def _saved():
    x = torch.randn(1, 2, 4, 4, 4)
    return x, _forward(x)


FORWARD_CASES = {
    "output size 0": (lambda x: _forward(x, (0, 2, 2)), "output_size entries must be >= 1"),
    "adaptive output size 0": (
        lambda x: _forward(x, (0, 2, 2), ADAPTIVE),
        "output_size entries must be >= 1",
    ),
    "output size too large": (lambda x: _forward(x, (2, 2, 9)), "output_size .* does not match"),
    "output size too small": (lambda x: _forward(x, (1, 2, 2)), "dimension 0 must be 2"),
    "kernel 0": (
        lambda x: _forward(x, (2, 2, 2), ([0, 2, 2], *GEOMETRY[1:])),
        "kernel_size entries must be >= 1",
    ),
    "stride 0": (lambda x: _forward(x, (2, 2, 2), ([2, 2, 2], [2, 0, 2], *GEOMETRY[2:])), "stride entries"),
    "negative padding": (
        lambda x: _forward(x, (2, 2, 2), (*GEOMETRY[:2], [0, -1, 0], *GEOMETRY[3:])),
        "padding",
    ),
    "padding over half the kernel": (
        lambda x: _forward(x, (3, 3, 3), (*GEOMETRY[:2], [2, 2, 2], *GEOMETRY[3:])),
        "padding should be at most half",
    ),
    "dilation 0": (
        lambda x: _forward(x, (2, 2, 2), (*GEOMETRY[:3], [1, 0, 1], *GEOMETRY[4:])),
        "dilation entries",
    ),
    "two entries": (lambda x: _forward(x, (2, 2, 2), ([2, 2], *GEOMETRY[1:])), "must have 3 entries"),
    "huge stride": (
        lambda x: _forward(x, (1, 1, 1), ([2, 2, 2], [2**62] * 3, *GEOMETRY[2:])),
        "must be < 2\\^31",
    ),
    "huge adaptive output": (lambda x: _forward(x, (2**40, 1, 1), ADAPTIVE), "must be < 2\\^31"),
    "temperature 0": (lambda x: _forward(x, (2, 2, 2), (*GEOMETRY[:5], 0.0)), "temperature"),
    "temperature inf": (lambda x: _forward(x, (2, 2, 2), (*GEOMETRY[:5], float("inf"))), "temperature"),
    "4-D input": (lambda x: _forward(x[0]), "must be 5-D"),
    "integer input": (lambda x: _forward(x.long()), "float16, bfloat16, float32 or float64"),
    "empty spatial input": (lambda x: _forward(x[:, :, :0]), "empty spatial dimension"),
}


@pytest.mark.parametrize("name", list(FORWARD_CASES))
def test_forward_rejects_bad_arguments(name):
    call, message = FORWARD_CASES[name]
    with pytest.raises(RuntimeError, match=message):
        call(torch.randn(1, 2, 4, 4, 4))


def _derivative_cases():
    """(op, tensor arguments) pairs with one argument wrong; the op's other arguments are right."""
    x, (y, offset, residual) = _saved()
    grad = torch.ones_like(y)
    cases = {}
    for op_name, first, first_name in (
        ("soft_pool3d_backward", grad, "grad_output"),
        ("soft_pool3d_jvp", x, "input_tangent"),
    ):
        op = getattr(OPS, op_name)
        good = [first, x, y, offset, residual]
        names = [first_name, "input", "output", "log_weight_offset", "output_residual"]
        for index, name in enumerate(names):
            t = good[index]
            wrong = {
                "shape": (t[..., :1], "shape"),
                "dtype": (t.double(), "must be"),
                "device": (t.to("meta"), "is on meta but input is on cpu|is on cpu but input is on meta"),
            }
            for kind, (bad, message) in wrong.items():
                if name == "input" and kind == "shape":
                    bad, message = t[:, :, :0], "empty spatial dimension"
                if name == "input" and kind == "dtype":
                    bad, message = t.half(), "must be"
                args = list(good)
                args[index] = bad
                cases[f"{op_name}: {name} {kind}"] = (op, args, GEOMETRY, message)
        # geometry that does not match the output's size, and the adaptive output size 0 (SIGFPE once)
        cases[f"{op_name}: geometry"] = (op, good, ([2, 2, 2], [1, 1, 1], *GEOMETRY[2:]), "does not match")
        empty = [
            first if first_name == "input_tangent" else grad[:, :, :0],
            x,
            y[:, :, :0],
            offset[:, :, :0],
            residual[:, :, :0],
        ]
        cases[f"{op_name}: adaptive output size 0"] = (
            op,
            empty,
            ADAPTIVE,
            "output_size entries must be >= 1",
        )
    return cases


DERIVATIVE_CASES = _derivative_cases()


@pytest.mark.parametrize("name", list(DERIVATIVE_CASES))
def test_derivative_ops_reject_bad_arguments(name):
    op, args, geometry, message = DERIVATIVE_CASES[name]
    with pytest.raises(RuntimeError, match=message):
        op(*args, *geometry)


def test_calls_that_once_crashed_raise_in_a_subprocess():
    """Each call runs in a fresh interpreter: a SIGFPE/SIGSEGV fails this test instead of killing pytest."""
    script = textwrap.dedent(
        """
        import torch, softpool_video  # noqa: F401
        ops = torch.ops.softpool_video
        x = torch.randn(1, 2, 4, 4, 4)
        ones, zeros = [1, 1, 1], [0, 0, 0]
        y, offset, residual = ops.soft_pool3d(x, [3, 3, 3], ones, ones, zeros, ones, True, 1.0)
        calls = [
            # adaptive backward with an output size of 0 divided by it (SIGFPE in 0.1)
            lambda: ops.soft_pool3d_backward(y[:, :, :0], x, y[:, :, :0], offset[:, :, :0],
                                             residual[:, :, :0], ones, ones, zeros, ones, True, 1.0),
            lambda: ops.soft_pool3d_jvp(x, x, y[:, :, :0], offset[:, :, :0], residual[:, :, :0],
                                        ones, ones, zeros, ones, True, 1.0),
            lambda: ops.soft_pool3d(x, [0, 0, 0], ones, ones, zeros, ones, True, 1.0),
            lambda: ops.soft_pool3d(x, [1, 1, 1], [2, 2, 2], [2**62] * 3, zeros, ones, False, 1.0),
            lambda: ops.soft_pool3d(x, [1, 2, 2], [2, 2, 2], [2, 2, 2], zeros, [2**62, 1, 1], False, 1.0),
        ]
        for index, call in enumerate(calls):
            try:
                call()
            except RuntimeError as error:
                print(index, "raised", str(error).splitlines()[0])
            else:
                print(index, "returned")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the process died (status {result.returncode}): {result.stderr[-2000:]}"
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and all(" raised softpool_video: " in line for line in lines), result.stdout


@pytest.mark.parametrize("shape", [(0, 3, 4, 9, 9), (2, 0, 4, 9, 9), (0, 0, 4, 9, 9)])
def test_empty_batch_or_channels_work_like_max_pool(shape):
    for kwargs, expected_fn in (
        (dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), F.max_pool3d),
        (None, None),
    ):
        x = torch.randn(shape, requires_grad=True)
        if kwargs is None:
            y = sv.adaptive_soft_pool3d(x, (1, 2, 2))
            expected_shape = (*shape[:2], 1, 2, 2)
        else:
            y = sv.soft_pool3d(x, **kwargs)
            # max_pool3d itself takes N = 0 but rejects C = 0: the pooled sizes come from one plane
            expected_shape = (*shape[:2], *expected_fn(torch.zeros(1, 1, *shape[2:]), **kwargs).shape[2:])
            if shape[1] > 0:
                assert expected_shape == expected_fn(x, **kwargs).shape
        assert y.shape == expected_shape and y.numel() == 0
        y.sum().backward()
        assert x.grad.shape == x.shape
        _, tangent = torch.func.jvp(
            lambda t: sv.adaptive_soft_pool3d(t, (1, 2, 2)), (x.detach(),), (x.detach(),)
        )
        assert tangent.shape == (*shape[:2], 1, 2, 2)
    assert sv.soft_pool1d(torch.randn(0, 2, 5), 2).shape == F.max_pool1d(torch.randn(0, 2, 5), 2).shape
    assert sv.soft_pool2d(torch.randn(0, 2, 5, 5), 2).shape == F.max_pool2d(torch.randn(0, 2, 5, 5), 2).shape


def test_empty_spatial_output_keeps_its_clear_error():
    with pytest.raises(ValueError, match="too small"):
        sv.soft_pool3d(torch.randn(0, 3, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="empty spatial dimension"):
        sv.adaptive_soft_pool2d(torch.randn(2, 3, 0, 4), 2)
