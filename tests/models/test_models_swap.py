"""swap_pooling on hand-made models: kinds, parameters, filters, reports, reverse swaps, semantics."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from softpool_video import AdaptiveSoftPool2d, AdaptiveSoftPool3d, SoftPool1d, SoftPool2d, SoftPool3d
from softpool_video.models import PoolSwap, pool_kind, swap_pooling


class Pools(nn.Module):
    """One pool of every swappable kind, in containers of every flavour."""

    def __init__(self):
        super().__init__()
        self.max1 = nn.MaxPool1d(3, stride=2, padding=1)
        self.max2 = nn.MaxPool2d((2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True)
        self.max3 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.avg2 = nn.AvgPool2d(3, stride=2, padding=1)
        self.seq = nn.Sequential(nn.Identity(), nn.AvgPool3d(2))
        self.heads = nn.ModuleList([nn.AdaptiveAvgPool3d(1), nn.AdaptiveAvgPool2d((None, 2))])


def _kinds(model: nn.Module) -> dict[str, str]:
    return {name: pool_kind(m)[0] for name, m in model.named_modules() if pool_kind(m) is not None}


def test_swap_to_soft_keeps_every_setting_and_reports_names():
    model = Pools()
    report: list[PoolSwap] = []
    returned = swap_pooling(model, report=report, temperature=0.5)

    assert returned is model
    assert _kinds(model) == {
        "max1": "soft",
        "max2": "soft",
        "max3": "soft",
        "avg2": "soft",
        "seq.1": "soft",
        "heads.0": "adaptive_soft",
        "heads.1": "adaptive_soft",
    }
    assert isinstance(model.max1, SoftPool1d) and isinstance(model.max3, SoftPool3d)
    assert isinstance(model.heads[1], AdaptiveSoftPool2d) and isinstance(model.heads[0], AdaptiveSoftPool3d)
    m = model.max2
    assert isinstance(m, SoftPool2d)
    assert (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode) == (
        (2, 3),
        (1, 2),
        (1, 1),
        (2, 1),
        True,
    )
    assert m.temperature == 0.5
    assert model.seq[1].kernel_size == 2 and model.seq[1].stride == 2
    assert model.heads[1].output_size == (None, 2) and model.heads[1].temperature == 0.5
    assert [(r.name, r.before, r.after) for r in report] == [
        ("max1", "max", "soft"),
        ("max2", "max", "soft"),
        ("max3", "max", "soft"),
        ("avg2", "avg", "soft"),
        ("seq.1", "avg", "soft"),
        ("heads.0", "adaptive_avg", "adaptive_soft"),
        ("heads.1", "adaptive_avg", "adaptive_soft"),
    ]
    assert all(r.swapped for r in report)


def test_swapped_pools_give_the_same_output_shapes():
    shapes = {"max1": (2, 4, 9), "max2": (2, 4, 9, 10), "max3": (2, 4, 3, 9, 10), "avg2": (2, 4, 9, 10)}
    original = Pools()
    swapped = swap_pooling(Pools())
    for name, shape in shapes.items():
        x = torch.randn(shape)
        assert getattr(swapped, name)(x).shape == getattr(original, name)(x).shape


def test_kinds_include_and_exclude_select_pools():
    model = swap_pooling(Pools(), kinds=("max",), include=["max*", "avg2"], exclude="max2")
    kinds = _kinds(model)
    assert kinds["max1"] == kinds["max3"] == "soft"
    assert kinds["max2"] == "max"  # excluded
    assert kinds["avg2"] == "avg"  # included by name, but not of a selected kind
    assert kinds["heads.0"] == "adaptive_avg"


def test_include_pattern_matching_nothing_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="softpool_video.models.swap"):
        swap_pooling(Pools(), include="no_such_pool")
    assert "matches no pooling module" in caplog.text
    assert "no_such_pool" in caplog.text


def test_pools_without_equivalent_are_left_alone_and_reported(caplog):
    model = nn.Sequential(
        nn.MaxPool2d(2, return_indices=True), nn.AvgPool2d(2, divisor_override=3), nn.MaxPool2d(2)
    )
    report: list[PoolSwap] = []
    with caplog.at_level(logging.WARNING, logger="softpool_video.models.swap"):
        swap_pooling(model, report=report)
    assert type(model[0]) is nn.MaxPool2d and type(model[1]) is nn.AvgPool2d
    assert isinstance(model[2], SoftPool2d)
    skipped = {r.name: r.reason for r in report if not r.swapped}
    assert set(skipped) == {"0", "1"}
    assert "return_indices" in skipped["0"] and "divisor_override" in skipped["1"]
    assert "return_indices" in caplog.text


def test_swap_back_to_max_restores_max_pooling_exactly():
    original = nn.Sequential(nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
    model = swap_pooling(
        swap_pooling(nn.Sequential(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))), pool="max"
    )
    assert type(model[0]) is nn.MaxPool3d
    x = torch.randn(2, 3, 4, 9, 9)
    torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)


def test_swap_to_avg_excludes_padding_like_softpool():
    model = swap_pooling(nn.Sequential(SoftPool2d(3, stride=1, padding=1)), pool="avg")
    assert type(model[0]) is nn.AvgPool2d and model[0].count_include_pad is False
    x = torch.randn(1, 2, 5, 5)
    expected = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x)
    torch.testing.assert_close(model(x), expected)
    # dilation has no avg equivalent: left alone and reported
    report: list[PoolSwap] = []
    dilated = swap_pooling(nn.Sequential(nn.MaxPool2d(3, dilation=2)), pool="avg", report=report)
    assert type(dilated[0]) is nn.MaxPool2d
    assert report[0].after is None and "dilation" in report[0].reason


def test_softpool_never_counts_padding_but_avgpool_may():
    """The documented semantic difference: at a very high temperature SoftPool is the average of the
    window's real elements, which is avg pooling with count_include_pad=False, not the default True."""
    x = torch.rand(1, 1, 6, 6) + 1.0
    soft = swap_pooling(nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1)), temperature=1e6)
    without_pad = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x)
    with_pad = nn.AvgPool2d(3, stride=1, padding=1)(x)
    torch.testing.assert_close(soft(x), without_pad, rtol=1e-4, atol=1e-4)
    # at the corner the default avg pool divides by 9 although only 4 elements are real
    assert (soft(x)[0, 0, 0, 0] - with_pad[0, 0, 0, 0]).abs() > 0.5


def test_default_kinds_of_a_reverse_swap_include_softpool():
    model = swap_pooling(nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)))
    assert _kinds(model) == {"0": "soft", "1": "adaptive_soft"}
    swap_pooling(model, pool="avg")
    assert _kinds(model) == {"0": "avg", "1": "adaptive_avg"}
    swap_pooling(model, pool="max")
    assert _kinds(model) == {"0": "max", "1": "adaptive_max"}


def test_pools_already_of_the_target_kind_are_not_reported():
    report: list[PoolSwap] = []
    swap_pooling(nn.Sequential(nn.MaxPool2d(2)), pool="max", kinds=("max",), report=report)
    assert report == []


def test_a_module_shared_at_two_places_is_swapped_at_both():
    shared = nn.MaxPool2d(2)
    model = nn.Sequential(shared, nn.Identity(), shared)
    swap_pooling(model)
    assert isinstance(model[0], SoftPool2d) and isinstance(model[2], SoftPool2d)


def test_swapped_model_trains_with_autograd():
    model = swap_pooling(nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Flatten(), nn.LazyLinear(3)))
    x = torch.randn(2, 1, 10, 10)
    model(x).sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"pool": "median"}, "pool"), ({"kinds": ("max", "lp")}, "kinds"), ({"include": [1]}, "include")],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        swap_pooling(Pools(), **kwargs)
