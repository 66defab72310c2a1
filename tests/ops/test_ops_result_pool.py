"""The CPU kernels' pool of large result blocks (csrc/cpu/softpool_cpu_memory.h): a large output,
statistic or grad_input reuses the block of an earlier result of the same rounded size instead of a
fresh mapping. Checked: blocks are reused and never while a tensor still uses them (results kept
alive stay equal to the float64 reference), the pool stays within its byte limit and frees
everything when turned off, pooled tensors behave like any CPU tensor (resize, share_memory_, save
and load), concurrent calls from several threads and a forked child are safe, and the results are
bitwise those of fresh allocations."""

from __future__ import annotations

import io
import multiprocessing
import threading

import pytest
import torch

import softpool_video as sv
from softpool_video.ops import HAVE_EXTENSION, cpu_result_pool, set_cpu_result_pool

pytestmark = pytest.mark.skipif(not HAVE_EXTENSION, reason="the pool belongs to the compiled CPU kernels")

MB = 2**20
# (1, 16, 8, 128, 128) float32: 8 MB input, so grad_input is pooled (>= 8 MB); the outputs are not
SHAPE = (1, 16, 8, 128, 128)
KERNEL, STRIDE = (1, 2, 2), (1, 2, 2)


def _pooled_bytes() -> int:
    return torch.ops.softpool_video._cpu_result_pool_bytes()[0]


def _limit_bytes() -> int:
    return torch.ops.softpool_video._cpu_result_pool_bytes()[1]


def _reference_grad(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    x64 = x.detach().double().requires_grad_()
    sv.soft_pool3d(x64, KERNEL, STRIDE).mul(weight.double()).sum().backward()
    return x64.grad


def _grad(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    sv.soft_pool3d(x, KERNEL, STRIDE).mul(weight).sum().backward()
    return x.grad


@pytest.fixture(autouse=True)
def _fresh_pool():
    with cpu_result_pool(False):  # frees whatever earlier tests left
        pass
    yield
    with cpu_result_pool(False):
        pass


def test_a_freed_grad_input_block_is_reused_by_the_next_result_of_its_size():
    torch.manual_seed(0)
    x, weight = torch.randn(SHAPE), torch.rand(1, 16, 8, 64, 64)
    first = _grad(x, weight)
    address = first.data_ptr()
    assert _pooled_bytes() == 0  # in use
    del first
    assert _pooled_bytes() == 8 * MB  # 8 MB, already a whole number of 2 MB pages
    second = _grad(x, weight)
    assert second.data_ptr() == address and _pooled_bytes() == 0
    torch.testing.assert_close(second.double(), _reference_grad(x, weight), rtol=1e-5, atol=1e-7)


def test_results_kept_alive_are_never_handed_out_again():
    """Ten gradients of different inputs alive at once: each its own block, each still its own value."""
    torch.manual_seed(1)
    cases = [(torch.randn(SHAPE) * (1 + i), torch.rand(1, 16, 8, 64, 64)) for i in range(10)]
    grads = [_grad(x, w) for x, w in cases]
    assert len({g.data_ptr() for g in grads}) == len(grads)
    for (x, w), g in zip(cases, grads, strict=True):
        torch.testing.assert_close(g.double(), _reference_grad(x, w), rtol=1e-5, atol=1e-7)


def test_the_pool_keeps_at_most_its_limit_and_evicts_the_oldest():
    limit = _limit_bytes()
    # results of distinct rounded sizes: 8, 10, 12, ... MB (grad_input of T = 8, 10, 12, ... frames)
    grads = []
    for frames in range(8, 8 + 2 * 40, 2):
        x = torch.randn(1, 16, frames, 128, 128, requires_grad=True)
        sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
        grads.append(x.grad)
    total = sum(g.numel() * 4 for g in grads)
    assert total > limit  # the test frees more than the pool may keep
    newest = grads[-1].data_ptr()
    grads.clear()
    assert limit - 120 * MB < _pooled_bytes() <= limit
    # the newest block survived eviction: the same size gets it back
    x = torch.randn(1, 16, 8 + 2 * 39, 128, 128, requires_grad=True)
    sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
    assert x.grad.data_ptr() == newest


def test_turning_the_pool_off_frees_its_blocks_and_makes_results_fresh():
    x = torch.randn(SHAPE, requires_grad=True)
    sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
    x.grad = None
    assert _pooled_bytes() == 8 * MB
    assert set_cpu_result_pool(False) is True and _pooled_bytes() == 0  # the plain setter, too
    assert set_cpu_result_pool(True) is False
    with cpu_result_pool(False):
        assert _pooled_bytes() == 0
        sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
        x.grad = None
        assert _pooled_bytes() == 0  # freed at once, not kept
    sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
    x.grad = None
    assert _pooled_bytes() == 8 * MB
    assert set_cpu_result_pool(False) is True and _pooled_bytes() == 0  # the plain setter, too
    assert set_cpu_result_pool(True) is False


def test_small_results_are_not_pooled():
    x = torch.randn(1, 16, 8, 64, 64, requires_grad=True)  # 2 MB
    sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
    x.grad = None
    assert _pooled_bytes() == 0


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_pooled_results_are_bitwise_the_fresh_results(dtype, channels_last):
    """Outputs, statistics (behind the gradient) and grad_input: pooled blocks hold stale values of
    earlier results, which every kernel overwrites."""
    torch.manual_seed(2)
    x = torch.randn(2, 16, 8, 128, 128).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    weight = torch.rand(2, 16, 8, 64, 64).to(dtype)

    def step():
        xg = x.detach().requires_grad_()
        y = sv.soft_pool3d(xg, (1, 3, 3), STRIDE, (0, 1, 1))
        (y * weight).sum().backward()
        return y.detach(), xg.grad

    with cpu_result_pool(False):
        fresh_y, fresh_grad = step()
    for _ in range(2):  # fill the pool with stale values, then run on them
        garbage_y, garbage_grad = step()
        garbage_y.fill_(float("nan"))
        garbage_grad.fill_(float("nan"))
        del garbage_y, garbage_grad
        pooled_y, pooled_grad = step()
    assert pooled_grad.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    assert torch.equal(pooled_y, fresh_y) and torch.equal(pooled_grad, fresh_grad)


def test_a_pooled_tensor_behaves_like_any_cpu_tensor(tmp_path):
    torch.manual_seed(3)
    x, weight = torch.randn(SHAPE), torch.rand(1, 16, 8, 64, 64)
    expected = _grad(x, weight)
    grad = _grad(x, weight)
    saved = io.BytesIO()
    torch.save(grad, saved)
    saved.seek(0)
    assert torch.equal(torch.load(saved, weights_only=True), expected)
    shared = _grad(x, weight).share_memory_()
    assert shared.is_shared() and torch.equal(shared, expected)
    grad.resize_(grad.numel() * 2)  # a storage resize goes through the pool's allocator
    assert torch.equal(grad[: expected.numel()], expected.flatten())
    grad.resize_(10)
    del grad, shared
    assert _pooled_bytes() <= _limit_bytes()


def test_concurrent_calls_from_threads_get_their_own_blocks():
    torch.manual_seed(4)
    cases = [(torch.randn(SHAPE) * (i + 1), torch.rand(1, 16, 8, 64, 64)) for i in range(4)]
    expected = [_reference_grad(x, w) for x, w in cases]
    failures = []

    def worker(i):
        x, w = cases[i]
        for _ in range(6):
            if not torch.allclose(_grad(x, w).double(), expected[i], rtol=1e-5, atol=1e-7):
                failures.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def _child_step(queue):
    torch.set_num_threads(1)  # as a DataLoader worker does: the parent's OpenMP pool did not fork
    x = torch.ones(SHAPE, requires_grad=True)
    for _ in range(3):
        sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
        x.grad = None
    queue.put(torch.ops.softpool_video._cpu_result_pool_bytes()[0])


def test_a_forked_child_starts_with_a_pool_of_its_own():
    x = torch.randn(1, 16, 10, 128, 128, requires_grad=True)  # a 10 MB block, not the child's size
    sv.soft_pool3d(x, KERNEL, STRIDE).sum().backward()
    x.grad = None
    assert _pooled_bytes() == 10 * MB  # the parent's free block
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_step, args=(queue,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 8 * MB  # its own block, not the parent's on top
    assert _pooled_bytes() == 10 * MB
