"""The small CPU model (r2plus1d_tiny): size, shapes, learning, and torch.compile matching eager."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from softpool_video.models import build_model, model_summary


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These clips are tiny: on a busy machine a second OpenMP thread mostly spin-waits (5-10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_size_and_feature_map_shapes():
    model = build_model("r2plus1d_tiny", 10)
    summary = model_summary(model)
    assert 300_000 <= summary.parameters <= 600_000
    shapes = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, o.shape)
        )
        for name in ("stem", "stage1", "stage2", "stage3")
    ]
    model(torch.randn(2, 3, 8, 64, 64))
    for hook in hooks:
        hook.remove()
    assert shapes == {
        "stem": (2, 32, 4, 16, 16),
        "stage1": (2, 32, 4, 16, 16),
        "stage2": (2, 64, 2, 8, 8),
        "stage3": (2, 128, 2, 4, 4),
    }


def test_learns_to_tell_motion_directions_apart():
    """A few SGD steps on a tiny motion task (a square moving left vs right) fit the training batch."""
    torch.manual_seed(0)
    clips = torch.zeros(8, 3, 8, 32, 32)
    labels = torch.arange(8) % 2
    for i, label in enumerate(labels.tolist()):
        row = 4 + 3 * i
        for t in range(8):
            col = 4 + 2 * t if label == 0 else 22 - 2 * t
            clips[i, :, t, row : row + 5, col : col + 5] = 1.0
    model = build_model("r2plus1d_tiny", 2, num_frames=8, crop_size=32, dropout_rate=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(30):
        loss = F.cross_entropy(model(clips), labels)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # training-mode statistics: 30 steps are too few for the running averages
        accuracy = (model(clips).argmax(1) == labels).float().mean().item()
    assert loss.item() < 0.5 * first
    assert accuracy == 1.0


@pytest.mark.slow
def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    eager = build_model("r2plus1d_tiny", 5, dropout_rate=0.0)
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True)
    clip = torch.randn(2, 3, 8, 64, 64)
    labels = torch.tensor([1, 3])

    # training mode: BatchNorm batch statistics, SoftPool forward and backward, running-stat updates
    losses = []
    for model in (eager, compiled):
        x = clip.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        losses.append((loss.detach(), x.grad))
    torch.testing.assert_close(losses[1][0], losses[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses[1][1], losses[0][1], rtol=1e-3, atol=1e-6)
    for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled_model.parameters()):
        torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-3, atol=1e-5, msg=name)
    torch.testing.assert_close(compiled_model.stem[1].running_mean, eager.stem[1].running_mean)
    # (eval mode would compile a second graph, doubling the test's time for no new SoftPool code path)
