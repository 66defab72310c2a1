"""build_model: every registered model runs forward + backward at two clip sizes, swaps the right pools
for each ``where``, returns logits, and validates its arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from softpool_video.models import (
    MODEL_REGISTRY,
    PoolSwap,
    build_model,
    list_models,
    model_input,
    model_summary,
    pool_kind,
)

SLOWFAST_STEM = ["blocks.0.multipathway_blocks.0.pool", "blocks.0.multipathway_blocks.1.pool"]
SLOWFAST_HEAD = ["blocks.5.pool.0", "blocks.5.pool.1"]
S3D_INNER = [f"features.{i}.branch3.0" for i in (5, 6)] + ["features.7"]
S3D_INNER += [f"features.{i}.branch3.0" for i in (8, 9, 10, 11, 12)] + ["features.13"]
S3D_INNER += [f"features.{i}.branch3.0" for i in (14, 15)]

# model -> (stem pools, head pools, pools in between); where="all" swaps the three.
EXPECTED_POOLS = {
    "slowfast_r50": (SLOWFAST_STEM, SLOWFAST_HEAD, []),
    "slowfast_r101": (SLOWFAST_STEM, SLOWFAST_HEAD, []),
    "r2plus1d_r50": ([], ["blocks.5.pool"], []),
    "r2plus1d_18": ([], ["avgpool"], []),
    "r3d_18": ([], ["avgpool"], []),
    "s3d": (["features.1", "features.4"], ["avgpool"], S3D_INNER),
    "x3d_xs": ([], ["blocks.5.pool.pool"], []),
    "x3d_s": ([], ["blocks.5.pool.pool"], []),
    "x3d_m": ([], ["blocks.5.pool.pool"], []),
    "r2plus1d_tiny": (["stem.3"], ["pool"], []),
}
# Pools that stay as they are whatever `where` says: averaging of class scores after the projection.
KEPT_POOLS = {name: ["blocks.6.output_pool"] for name in ("slowfast_r50", "slowfast_r101")}
KEPT_POOLS.update({name: ["blocks.5.output_pool"] for name in ("r2plus1d_r50", "x3d_xs", "x3d_s", "x3d_m")})

# Two clip sizes (N, T, side) per model: the smallest it takes, and a larger odd one. Batch 2 where the
# last feature map would otherwise hold one value per channel (BatchNorm cannot train on that).
CLIP_SIZES = {name: [(2, 4, 32), (1, 8, 48)] for name in EXPECTED_POOLS}
CLIP_SIZES["s3d"] = [(2, 8, 48), (1, 12, 72)]
CLIP_SIZES["r2plus1d_tiny"] = [(2, 8, 64), (1, 16, 80)]

# pytorchvideo's X3D Swish uses a deprecated autograd attribute; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:'saved_variables' is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These clips are tiny: on a busy machine a second OpenMP thread mostly spin-waits (5-10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _swapped(report: list[PoolSwap]) -> list[str]:
    return sorted(r.name for r in report if r.swapped)


def test_every_registered_model_is_covered_here():
    assert set(list_models()) == set(EXPECTED_POOLS)
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", sorted(EXPECTED_POOLS))
def test_forward_backward_at_two_clip_sizes(name):
    num_classes = 7
    model = build_model(name, num_classes)
    assert model.training
    for batch, frames, side in CLIP_SIZES[name]:
        model.zero_grad(set_to_none=True)
        clip = torch.randn(batch, 3, frames, side, side, requires_grad=True)
        logits = model(model_input(model, clip))
        assert logits.shape == (batch, num_classes)
        assert torch.isfinite(logits).all()
        logits.square().sum().backward()
        assert clip.grad is not None and clip.grad.abs().sum() > 0
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None for g in grads)


@pytest.mark.parametrize("name", sorted(EXPECTED_POOLS))
def test_where_selects_the_pools_that_become_softpool(name):
    stem, head, inner = EXPECTED_POOLS[name]
    expected = {"stem": stem, "head": head, "all": stem + head + inner, "none": []}
    for where, names in expected.items():
        report: list[PoolSwap] = []
        model = build_model(name, 5, where=where, swap_report=report)
        assert _swapped(report) == sorted(names), where
        kinds = {n: pool_kind(m)[0] for n, m in model.named_modules() if pool_kind(m) is not None}
        assert sorted(n for n, k in kinds.items() if k in ("soft", "adaptive_soft")) == sorted(names), where
        for kept in KEPT_POOLS.get(name, []):
            assert kinds[kept] == "adaptive_avg"
        # nothing was left alone for lack of a SoftPool equivalent
        assert all(r.swapped for r in report)


def test_slowfast_r50_all_swaps_two_stem_and_two_head_pools():
    report: list[PoolSwap] = []
    model = build_model("slowfast_r50", 10, where="all", swap_report=report)
    assert [(r.name, r.before, r.after) for r in report] == [
        (SLOWFAST_STEM[0], "max", "soft"),
        (SLOWFAST_STEM[1], "max", "soft"),
        (SLOWFAST_HEAD[0], "adaptive_avg", "adaptive_soft"),
        (SLOWFAST_HEAD[1], "adaptive_avg", "adaptive_soft"),
    ]
    stem_pool = model.get_submodule(SLOWFAST_STEM[0])
    settings = (stem_pool.kernel_size, stem_pool.stride, stem_pool.padding)
    assert tuple(map(tuple, settings)) == ((1, 3, 3), (1, 2, 2), (0, 1, 1))


@pytest.mark.parametrize(
    ("name", "pool_name"),
    [
        ("r2plus1d_18", "stem.6"),
        ("r3d_18", "stem.3"),
        ("r2plus1d_r50", "blocks.0.pool"),
        ("x3d_xs", "blocks.0.pool"),
    ],
)
def test_stem_pool_option_adds_a_stem_softpool(name, pool_name):
    report: list[PoolSwap] = []
    model = build_model(name, 3, where="stem", stem_pool=True, swap_report=report)
    assert _swapped(report) == [pool_name]
    pool = model.get_submodule(pool_name)
    assert pool_kind(pool) == ("soft", 3)
    assert (tuple(pool.kernel_size), tuple(pool.stride)) == ((1, 3, 3), (1, 2, 2))
    plain = build_model(name, 3, pooling="original")
    assert set(model.state_dict()) == set(plain.state_dict())  # the pool adds no weights


def test_pooling_kinds_and_temperature():
    kinds = {}
    for pooling in ("soft", "max", "avg", "original"):
        model = build_model("r2plus1d_tiny", 4, pooling=pooling, temperature=0.25)
        kinds[pooling] = (pool_kind(model.stem[3])[0], pool_kind(model.pool)[0])
        if pooling == "soft":
            assert model.stem[3].temperature == 0.25 and model.pool.temperature == 0.25
    assert kinds == {
        "soft": ("soft", "adaptive_soft"),
        "max": ("max", "adaptive_max"),
        "avg": ("avg", "adaptive_avg"),
        "original": ("max", "adaptive_avg"),
    }


def test_slowfast_takes_two_pathways_and_keeps_the_callers_list():
    model = build_model("slowfast_r50", 4, num_frames=8, crop_size=32).eval()
    assert model.pathway_alpha == 4
    clip = torch.randn(1, 3, 8, 32, 32)
    inputs = model_input(model, clip)
    assert [t.shape[2] for t in inputs] == [2, 8]
    slow, fast = inputs
    with torch.no_grad():
        first = model(inputs)
        second = model(inputs)
    assert inputs[0] is slow and inputs[1] is fast
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_slowfast_alpha_is_configurable_and_checked():
    model = build_model("slowfast_r50", 4, alpha=8, num_frames=16, crop_size=32).eval()
    assert model.pathway_alpha == 8
    assert model.blocks[0].multipathway_fusion.conv_fast_to_slow.stride == (8, 1, 1)
    with torch.no_grad():
        assert model(model_input(model, torch.randn(1, 3, 16, 32, 32))).shape == (1, 4)
    with pytest.raises(ValueError, match="multiple of alpha"):
        build_model("slowfast_r50", 4, num_frames=10)


def test_single_tensor_models_have_no_pathway_alpha():
    model = build_model("x3d_xs", 4, num_frames=6, crop_size=96)
    assert model.pathway_alpha is None
    assert (model.model_name, model.num_frames, model.crop_size) == ("x3d_xs", 6, 96)


@pytest.mark.parametrize("name", sorted(EXPECTED_POOLS))
def test_heads_return_logits_not_probabilities(name):
    model = build_model(name, 6)
    # (X3D's squeeze-excitation blocks use Sigmoid as a gate; only Softmax would normalise the logits)
    assert not any(isinstance(m, nn.Softmax) for m in model.modules())


def test_logits_are_not_normalised_in_training_mode():
    model = build_model("r2plus1d_r50", 5, num_frames=4, crop_size=32)
    logits = model(torch.randn(2, 3, 4, 32, 32))
    assert not torch.allclose(logits.sum(1), torch.ones(2))
    assert (logits < 0).any()


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'") as error:
        build_model("resnet9000", 10)
    for name in list_models():
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"pooling": "median"}, "pooling"),
        ({"where": "middle"}, "where"),
        ({"num_frames": 0}, "num_frames"),
        ({"crop_size": 12.5}, "crop_size"),
        ({"alpha": 4}, "alpha"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        build_model("r2plus1d_tiny", 10, **kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("r2plus1d_tiny", 0)


def test_registry_defaults_describe_each_model():
    for name, spec in MODEL_REGISTRY.items():
        assert spec.num_frames >= 1 and spec.crop_size >= 32 and spec.description, name
        assert (spec.alpha is not None) == name.startswith("slowfast"), name


def test_model_summary_counts_parameters_flops_and_pools():
    model = build_model("r2plus1d_tiny", 10)
    summary = model_summary(model)
    assert summary.parameters == sum(p.numel() for p in model.parameters())
    assert summary.input_shapes == [(1, 3, 8, 64, 64)]
    assert [(p.name, p.kind) for p in summary.pools] == [("stem.3", "soft"), ("pool", "adaptive_soft")]
    longer = model_summary(model, num_frames=16)
    # the network is convolutional: twice the frames, twice the FLOPs
    assert longer.flops == pytest.approx(2 * summary.flops, rel=0.02)
    assert "r2plus1d_tiny" in str(summary) and "stem.3" in str(summary)
    assert model.training  # restored after counting in eval mode


def test_model_summary_of_slowfast_lists_both_pathways():
    model = build_model("slowfast_r50", 10, pooling="original", num_frames=8, crop_size=32)
    summary = model_summary(model)
    assert summary.input_shapes == [(1, 3, 2, 32, 32), (1, 3, 8, 32, 32)]
    assert summary.flops > 1e8
    assert summary.pools_of_kind("max") == SLOWFAST_STEM
    assert summary.pools_of_kind("adaptive_avg") == SLOWFAST_HEAD + ["blocks.6.output_pool"]
