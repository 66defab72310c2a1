"""SoftPool modules with learn_temperature=True: one parameter log T (one value or num_channels),
exposed as module.temperature, trained by the optimiser, kept positive, in the state dict."""

from __future__ import annotations

import math

import pytest
import torch

import softpool_video as sv

MODULES = {
    "SoftPool1d": (lambda **kw: sv.SoftPool1d(3, 2, 1, **kw), (2, 4, 11)),
    "SoftPool2d": (lambda **kw: sv.SoftPool2d(2, **kw), (2, 4, 6, 8)),
    "SoftPool3d": (lambda **kw: sv.SoftPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), **kw), (2, 4, 3, 7, 7)),
    "AdaptiveSoftPool1d": (lambda **kw: sv.AdaptiveSoftPool1d(3, **kw), (2, 4, 11)),
    "AdaptiveSoftPool2d": (lambda **kw: sv.AdaptiveSoftPool2d((2, None), **kw), (2, 4, 6, 8)),
    "AdaptiveSoftPool3d": (lambda **kw: sv.AdaptiveSoftPool3d(1, **kw), (2, 4, 3, 7, 7)),
}


@pytest.mark.parametrize("num_channels", [None, 4], ids=["scalar", "per_channel"])
@pytest.mark.parametrize("name", list(MODULES))
def test_learned_temperature_is_a_parameter_that_matches_the_fixed_module(name, num_channels):
    build, shape = MODULES[name]
    learned = build(temperature=0.5, learn_temperature=True, num_channels=num_channels)
    fixed = build(temperature=0.5)
    (param,) = list(learned.parameters())
    assert param is learned.log_temperature
    assert tuple(param.shape) == (() if num_channels is None else (num_channels,))
    torch.testing.assert_close(param.detach(), torch.full_like(param, math.log(0.5)))
    torch.testing.assert_close(learned.temperature, torch.full_like(param, 0.5))
    assert learned.learn_temperature and learned.num_channels == num_channels
    assert list(fixed.parameters()) == [] and fixed.temperature == 0.5 and not fixed.learn_temperature
    x = torch.randn(shape)
    torch.testing.assert_close(learned(x), fixed(x))
    learned(x).square().sum().backward()
    assert param.grad is not None and bool(param.grad.ne(0).all())


def test_an_optimiser_step_changes_the_temperature_and_it_stays_positive():
    pool = sv.SoftPool2d(2, temperature=1.0, learn_temperature=True, num_channels=2)
    optimiser = torch.optim.SGD(pool.parameters(), lr=0.05)
    x = torch.randn(4, 2, 8, 8)
    history = []
    for _ in range(20):
        optimiser.zero_grad()
        # maximising the output pushes towards max pooling: dy/dT = -Var_s(x) / T^2 < 0, so T falls
        (-pool(x).mean(dim=(0, 2, 3)).sum()).backward()
        optimiser.step()
        history.append(pool.temperature.detach().clone())
    t = torch.stack(history)
    assert bool((t > 0).all()) and bool((t[1:] < t[:-1]).all()), t
    assert float(t[-1].max()) < 0.9
    assert torch.isfinite(pool(x)).all()


def test_state_dict_round_trip_keeps_learned_values():
    source = torch.nn.Sequential(sv.SoftPool3d(2, learn_temperature=True, num_channels=3))
    with torch.no_grad():
        source[0].log_temperature.copy_(torch.tensor([-1.0, 0.25, 2.0]))
    target = torch.nn.Sequential(sv.SoftPool3d(2, learn_temperature=True, num_channels=3))
    target.load_state_dict(source.state_dict(), strict=True)
    torch.testing.assert_close(target[0].temperature, torch.tensor([-1.0, 0.25, 2.0]).exp())
    with pytest.raises(RuntimeError, match="log_temperature"):  # a fixed-temperature model cannot take it
        torch.nn.Sequential(sv.SoftPool3d(2)).load_state_dict(source.state_dict(), strict=True)


def test_setting_the_temperature_of_a_learned_module():
    pool = sv.AdaptiveSoftPool2d(1, learn_temperature=True, num_channels=2)
    pool.temperature = 3.0
    torch.testing.assert_close(pool.temperature.detach(), torch.tensor([3.0, 3.0]))
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        pool.temperature = -1.0
    fixed = sv.SoftPool1d(2)
    fixed.temperature = 0.25
    assert fixed.temperature == 0.25


def test_repr_says_what_is_learned():
    assert "learn_temperature=True, num_channels=5" in repr(
        sv.SoftPool2d(2, learn_temperature=True, num_channels=5)
    )
    assert "temperature=0.5" in repr(sv.AdaptiveSoftPool3d(1, temperature=0.5))
    assert "temperature" not in repr(sv.SoftPool3d(2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_channels=3), "num_channels=3 is only used with learn_temperature=True"),
        (dict(learn_temperature=True, num_channels=0), "num_channels must be a positive int"),
        (dict(learn_temperature=True, temperature=0.0), "temperature must be a finite number > 0"),
        (dict(learn_temperature=True, temperature=-2.0), "temperature must be a finite number > 0"),
        (dict(learn_temperature=True, temperature="1"), "temperature must be a number"),
    ],
)
def test_bad_module_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sv.SoftPool2d(2, **kwargs)
    with pytest.raises(ValueError, match=message):
        sv.AdaptiveSoftPool2d(1, **kwargs)


def test_a_per_channel_module_on_the_wrong_channel_count_names_temperature():
    pool = sv.SoftPool2d(2, learn_temperature=True, num_channels=3)
    with pytest.raises(
        ValueError, match=r"temperature must be .*\(C,\) = \(4,\).*got a tensor of shape \(3,\)"
    ):
        pool(torch.randn(1, 4, 4, 4))


def test_module_moves_with_to_and_keeps_double_precision():
    pool = sv.SoftPool1d(2, learn_temperature=True, num_channels=2).double()
    x = torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True)
    assert pool.log_temperature.dtype == torch.float64
    assert torch.autograd.gradcheck(
        lambda x, log_t: sv.soft_pool1d(x, 2, temperature=log_t.exp()),
        (x, pool.log_temperature.detach().clone().requires_grad_()),
    )
