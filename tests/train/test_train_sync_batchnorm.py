"""CPUSyncBatchNorm over 2 gloo processes computes what BatchNorm computes on the whole batch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from softpool_video.train.sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm


def _inputs():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 3, 5, 5, generator=generator) * 3 + 1
    upstream = torch.randn(6, 4, 3, 5, 5, generator=generator)
    return x, upstream


def _worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        x, upstream = _inputs()
        x = x[rank * 3 : (rank + 1) * 3].clone().requires_grad_(True)  # each rank holds half the batch
        norm = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm3d(4)), torch.device("cpu"))
        assert isinstance(norm[0], CPUSyncBatchNorm)
        with torch.no_grad():
            norm[0].weight.copy_(torch.linspace(0.5, 2.0, 4))
            norm[0].bias.copy_(torch.linspace(-1.0, 1.0, 4))
        out = norm(x)
        (out * upstream[rank * 3 : (rank + 1) * 3]).sum().backward()
        results[rank] = {
            "out": out.detach(),
            "x_grad": x.grad,
            "w_grad": norm[0].weight.grad,
            "b_grad": norm[0].bias.grad,
            "running_mean": norm[0].running_mean.clone(),
            "running_var": norm[0].running_var.clone(),
        }
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_cpu_sync_batchnorm_matches_full_batch(tmp_path):
    x, upstream = _inputs()
    x = x.clone().requires_grad_(True)
    reference = nn.BatchNorm3d(4)
    with torch.no_grad():
        reference.weight.copy_(torch.linspace(0.5, 2.0, 4))
        reference.bias.copy_(torch.linspace(-1.0, 1.0, 4))
    out = reference(x)
    (out * upstream).sum().backward()

    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    one, two = results[0], results[1]
    torch.testing.assert_close(torch.cat([one["out"], two["out"]]), out.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([one["x_grad"], two["x_grad"]]), x.grad, rtol=1e-4, atol=1e-5)
    # DDP sums (then averages) parameter gradients over ranks
    torch.testing.assert_close(one["w_grad"] + two["w_grad"], reference.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one["b_grad"] + two["b_grad"], reference.bias.grad, rtol=1e-5, atol=1e-5)
    for key in ("running_mean", "running_var"):
        torch.testing.assert_close(one[key], getattr(reference, key), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(two[key], getattr(reference, key), rtol=1e-5, atol=1e-6)


def test_conversion_keeps_parameters_and_state_dict_keys():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Sequential(nn.BatchNorm3d(4)))
    original = copy.deepcopy(model)
    keys = list(model.state_dict())
    converted = convert_sync_batchnorm(model, torch.device("cpu"))
    assert isinstance(converted[1], CPUSyncBatchNorm) and isinstance(converted[2][0], CPUSyncBatchNorm)
    assert list(converted.state_dict()) == keys
    assert converted[1].weight is model[1].weight
    x = torch.randn(2, 3, 2, 4, 4)
    # without a process group it is plain BatchNorm
    torch.testing.assert_close(converted(x), original(x))
    assert all(isinstance(m, nn.BatchNorm3d) for m in (original[1], original[2][0]))
