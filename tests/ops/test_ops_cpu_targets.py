"""The CPU vector loops are compiled as AVX-512, AVX2+FMA and baseline x86-64 clones, and the library
picks one when it loads, so the rest of the suite runs only the clone this CPU picks (AVX-512 on the
CI machine). Users on AVX2-only or older CPUs run the others. Each is built here alone
(``SOFTPOOL_CPU_TARGET``, in a copy of the checkout) and runs the operator tests that compare
every fast path with the shared scalar body and the float64 reference."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A copy of the checkout holds what builds and tests it: sources, configs, tests; not the
# environment, builds, results or data of the top directory, nor compiled files anywhere.
_TOP_LEVEL_SKIPPED = {".git", ".venv", "build", "bench_results", "runs", "data", "outputs"}
_SKIPPED_EVERYWHERE = shutil.ignore_patterns(
    "__pycache__", "*.so", "*.egg-info", ".ruff_cache", ".pytest_cache"
)


def _not_copied(directory: str, names: list[str]) -> set[str]:
    skipped = set(_SKIPPED_EVERYWHERE(directory, names))
    if Path(directory) == ROOT:
        skipped |= _TOP_LEVEL_SKIPPED & set(names)
    return skipped


# the operator tests that run the CPU fast paths against the scalar body and the float64 reference
_FAST_PATH_TESTS = [
    "tests/ops/test_ops_fast_paths.py",
    "tests/ops/test_ops_inference.py",
    "tests/ops/test_ops_numerics.py",
    "tests/ops/test_ops_temperature.py",
]


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the clones exist on x86-64 only")
@pytest.mark.parametrize("target", ["x86-64-v3", "x86-64"])
def test_every_cpu_clone_passes_the_fast_path_tests(target, tmp_path):
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=_not_copied)
    # a CPU-only build (the clones are CPU code; CI's CUDA build is checked by the suite itself)
    env = {**os.environ, "SOFTPOOL_CUDA": "0", "SOFTPOOL_CPU_TARGET": target}
    env.pop("SOFTPOOL_EXPECT_CUDA_BUILD", None)
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=source, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-3000:]

    # the copy's package, with the library just built, is what the tests below import
    info = subprocess.run(
        [sys.executable, "-c", "import json, softpool_video.ops as o; print(json.dumps(o.extension_info()))"],
        cwd=source, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr[-3000:]
    built = json.loads(info.stdout.strip().splitlines()[-1])
    assert built["loaded"] and built["cpu_target"] == target, built
    assert Path(built["path"]).is_relative_to(source), built

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not cuda", *_FAST_PATH_TESTS],
        cwd=source, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
