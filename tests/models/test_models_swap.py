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


# ---------------------------------------------------------------------------------------------
# Learned temperatures


def test_module_kinds_are_the_toolkit_kinds_and_their_adaptive_forms():
    from softpool_video.constants import POOL_KINDS
    from softpool_video.models import MODULE_POOL_KINDS

    one_of_each = [nn.MaxPool2d(2), nn.AvgPool2d(2), SoftPool2d(2)]
    one_of_each += [nn.AdaptiveMaxPool2d(1), nn.AdaptiveAvgPool2d(1), AdaptiveSoftPool2d(1)]
    assert tuple(pool_kind(m)[0] for m in one_of_each) == MODULE_POOL_KINDS
    assert MODULE_POOL_KINDS[: len(POOL_KINDS)] == POOL_KINDS


def test_swap_with_learned_temperature_gives_each_softpool_a_parameter():
    model = swap_pooling(Pools(), temperature=0.5, learn_temperature=True)
    pools = {name: m for name, m in model.named_modules() if pool_kind(m) is not None}
    assert len(pools) == 7
    for name, m in pools.items():
        assert m.learn_temperature and m.num_channels is None, name
        torch.testing.assert_close(m.temperature.detach(), torch.tensor(0.5))
    assert sorted(k for k in model.state_dict() if k.endswith("log_temperature")) == sorted(
        f"{name}.log_temperature" for name in pools
    )
    # swapping back to max removes the parameters: the model loads a plain state dict again
    swap_pooling(model, "max")
    assert list(model.parameters()) == []


class Branches(nn.Module):
    """Two branches after a stem: the nearest conv before the second pool is not its input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.MaxPool2d(2))
        self.left = nn.Conv2d(6, 4, 1)
        self.right_pool = nn.MaxPool2d(3, 1, 1)  # applied to the stem output (6 channels)
        self.head = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([self.left(x), self.right_pool(x)], dim=1))


def test_channel_inference_by_structure_and_by_a_forward_pass():
    from softpool_video.models import infer_pool_channels

    model = Branches()
    assert infer_pool_channels(model) == {
        "stem.2": 6,
        "right_pool": 4,
        "head": 4,
    }  # a guess: right_pool wrong
    exact = infer_pool_channels(model, torch.randn(1, 3, 8, 8))
    assert exact == {"stem.2": 6, "right_pool": 6, "head": 10}
    assert model.training and model.stem[1].training  # the dry run restores the modes

    swap_pooling(
        model, learn_temperature=True, temperature_per_channel=True, example_input=torch.randn(1, 3, 8, 8)
    )
    assert [model.stem[2].num_channels, model.right_pool.num_channels, model.head.num_channels] == [6, 6, 10]
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert model.right_pool.log_temperature.grad.shape == (6,)


def test_a_wrong_structural_guess_fails_at_the_first_forward_naming_temperature():
    model = swap_pooling(Branches(), learn_temperature=True, temperature_per_channel=True)
    with pytest.raises(ValueError, match=r"temperature must be .*\(C,\) = \(6,\).*shape \(4,\)"):
        model(torch.randn(1, 3, 8, 8))


def test_per_channel_without_an_inferable_channel_count_names_the_layer():
    model = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, 4, 1))
    with pytest.raises(ValueError, match=r"cannot infer the channel count of pool '0'"):
        swap_pooling(model, learn_temperature=True, temperature_per_channel=True)
    swap_pooling(
        model, learn_temperature=True, temperature_per_channel=True, example_input=torch.randn(1, 3, 4, 4)
    )
    assert model[0].num_channels == 3


def test_per_channel_needs_learn_temperature():
    with pytest.raises(ValueError, match="temperature_per_channel=True needs learn_temperature=True"):
        swap_pooling(Pools(), temperature_per_channel=True)


def test_registry_model_with_per_channel_temperatures_round_trips_its_state_dict():
    from softpool_video.models import build_model

    model = build_model("r2plus1d_tiny", 5, learn_temperature=True, temperature_per_channel=True)
    learned = {n: m for n, m in model.named_modules() if getattr(m, "learn_temperature", False)}
    assert {n: m.num_channels for n, m in learned.items()} == {"stem.3": 32, "pool": 128}
    with torch.no_grad():
        for m in learned.values():
            m.log_temperature.uniform_(-1, 1)
    again = build_model("r2plus1d_tiny", 5, learn_temperature=True, temperature_per_channel=True)
    again.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, model.num_frames, 32, 32)
    model.eval(), again.eval()
    torch.testing.assert_close(again(x), model(x))
