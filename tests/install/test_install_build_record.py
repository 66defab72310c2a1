"""The build record compiled into softpool_video._C: what it says, and what the package does with it.

A ``_C`` built for another torch must not be loaded (that can fail or crash); the package warns
once with the rebuild command and runs the pure-PyTorch reference. The mismatch is staged on a copy
of the package whose library carries a rewritten record, imported in a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from softpool_video import _buildinfo
from softpool_video.ops import _extension, extension_info

REPO = Path(__file__).resolve().parents[2]


def _library() -> Path:
    path = _extension.LIBRARY_PATH
    assert path is not None and path.is_file(), "softpool_video._C is not built (make setup builds it)"
    return path


# --- the record format ------------------------------------------------------------------------


def test_record_round_trips_through_a_binary_file(tmp_path):
    record = {"torch": "2.14.1+cu130", "torch_cuda": "13.0", "cuda": True, "cuda_archs": ["9.0"]}
    blob = os.urandom(5000) + _buildinfo.encode_record(record) + os.urandom(3000)
    (tmp_path / "lib.so").write_bytes(blob)
    assert _buildinfo.read_record(tmp_path / "lib.so") == record
    assert len(_buildinfo.encode_record(record)) == _buildinfo.RECORD_BYTES


def test_files_without_a_record_read_as_none(tmp_path):
    (tmp_path / "old.so").write_bytes(b"\x7fELF" + bytes(4096))
    (tmp_path / "empty.so").write_bytes(b"")
    assert _buildinfo.read_record(tmp_path / "old.so") is None
    assert _buildinfo.read_record(tmp_path / "empty.so") is None
    assert _buildinfo.read_record(tmp_path / "missing.so") is None


def test_record_source_is_the_c_literal_of_the_record():
    source = _buildinfo.record_source({"torch": 'a"b\\c'})
    assert f"{_buildinfo.RECORD_SYMBOL}[{_buildinfo.RECORD_BYTES}]" in source
    literal = source.split(" = ", 1)[1].rstrip(";\n")
    assert json.loads(literal).encode("ascii") == _buildinfo.encode_record({"torch": 'a"b\\c'}).rstrip(b"\0")


def test_mismatch_compares_version_local_label_and_cuda():
    same = {"torch": "2.14.1+cu130", "torch_cuda": "13.0"}
    assert _buildinfo.mismatch(same, "2.14.1+cu130", "13.0") is None
    assert _buildinfo.mismatch(None, "2.14.1+cu130", "13.0") is None  # no record: nothing to compare
    assert "2.13.0" in _buildinfo.mismatch({"torch": "2.13.0", "torch_cuda": None}, "2.14.1", None)
    # the CPU and CUDA builds of one release are different binaries
    assert _buildinfo.mismatch({"torch": "2.14.1+cpu", "torch_cuda": None}, "2.14.1+cu130", "13.0")
    assert _buildinfo.mismatch({"torch": "2.14.1", "torch_cuda": None}, "2.14.1", "13.0")


def test_arch_list_parsing():
    assert _buildinfo.parse_arch_list("8.0;8.6 9.0+PTX ") == ["8.0", "8.6", "9.0+PTX"]
    assert _buildinfo.parse_arch_list("") == []


# --- the real library ---------------------------------------------------------------------------


def test_extension_info_reports_the_build():
    info = extension_info()
    record = _buildinfo.read_record(_library())
    assert record is not None, "the library carries no build record: rebuild it (make setup)"
    assert info["loaded"] and info["cpu"]
    assert info["torch_version"] == str(torch.__version__) == record["torch"]
    assert info["torch_cuda_version"] == torch.version.cuda
    assert info["running_torch_version"] == str(torch.__version__)
    assert info["version"] == __import__("softpool_video").__version__
    assert info["path"] == str(_library())
    assert info["cuda"] == record["cuda"]
    assert info["cpu_target"] == record["cpu_target"] == (os.environ.get("SOFTPOOL_CPU_TARGET") or "clones")
    if record["cuda"]:
        # the toolkit release the kernels were compiled with, and the architectures asked for
        home = _buildinfo.find_cuda_home()
        assert home is not None and info["cuda_version"] == _buildinfo.nvcc_version(home)
        expected = os.environ.get("TORCH_CUDA_ARCH_LIST")
        if expected:
            assert info["cuda_archs"] == _buildinfo.parse_arch_list(expected)
        assert info["cuda_archs"]
    else:
        assert info["cuda_version"] is None and info["cuda_archs"] == []


def _staged_package(tmp_path: Path, record: dict | None) -> Path:
    """A copy of the package whose _C carries ``record`` (None: no record at all); returns its parent."""
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "softpool_video", site / "softpool_video", ignore=shutil.ignore_patterns("__pycache__")
    )
    library = site / "softpool_video" / _library().name
    data = bytearray(library.read_bytes())
    start = data.find(_buildinfo.MARKER)
    assert start >= 0
    block = _buildinfo.encode_record(record) if record is not None else bytes(_buildinfo.RECORD_BYTES)
    data[start : start + _buildinfo.RECORD_BYTES] = block
    library.write_bytes(bytes(data))
    return site


_PROBE = r"""
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import torch
    import softpool_video as sv
    from softpool_video.ops import extension_info
    x = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64).reshape(1, 1, 1, 2, 2)
    first = sv.soft_pool3d(x, (1, 2, 2)).item()
    second = sv.soft_pool3d(x, (1, 2, 2)).item()
print(json.dumps({
    "file": sv.__file__,
    "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
    "info": extension_info(),
    "ops_registered": hasattr(torch.ops.softpool_video, "soft_pool3d"),
    "values": [first, second],
}))
"""


def _probe(site: Path, **env_overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SOFTPOOL_CUDA")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1", **env_overrides)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=site.parent, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).resolve() == (site / "softpool_video" / "__init__.py").resolve()
    return result


def _softpool_of_0123() -> float:
    """SoftPool of the window [0, 1, 2, 3] at temperature 1, by hand: sum(x e^x) / sum(e^x)."""
    weights = [math.exp(v) for v in range(4)]
    return sum(v * w for v, w in zip(range(4), weights)) / sum(weights)


def test_a_library_built_for_another_torch_is_not_loaded(tmp_path):
    record = dict(_buildinfo.read_record(_library()))
    record["torch"] = "2.13.0+cu126"
    record["torch_cuda"] = "12.6"
    result = _probe(_staged_package(tmp_path, record))

    assert len(result["warnings"]) == 1, result["warnings"]  # once, not per call
    message = result["warnings"][0]
    assert "built for torch 2.13.0+cu126 (CUDA 12.6)" in message
    assert (
        f"torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'no CUDA'})"
        in message
    )
    assert "not loaded" in message and "pure-PyTorch reference" in message
    # the exact command: this interpreter, against the installed torch, nothing else reinstalled
    assert f"{sys.executable} -m pip install --no-build-isolation --no-deps" in message
    assert not result["ops_registered"]  # the library was never loaded

    info = result["info"]
    assert not info["loaded"] and not info["cpu"] and not info["cuda"]
    assert info["torch_version"] == "2.13.0+cu126" and info["torch_cuda_version"] == "12.6"
    assert info["running_torch_version"] == str(torch.__version__)
    assert info["rebuild_command"] in message
    assert result["values"] == pytest.approx([_softpool_of_0123()] * 2, rel=1e-12)


def test_a_library_without_a_record_is_loaded_as_before(tmp_path):
    result = _probe(_staged_package(tmp_path, None))
    assert result["warnings"] == [] or all("CUDA kernels" in w for w in result["warnings"])
    assert result["info"]["loaded"] and result["info"]["cpu"] and result["ops_registered"]
    assert result["info"]["torch_version"] is None and result["info"]["cuda_archs"] is None
    assert result["values"] == pytest.approx([_softpool_of_0123()] * 2, rel=1e-12)


# --- the CUDA-less build warning, on the module's own decision function --------------------------


@pytest.fixture
def cpu_only_build(monkeypatch, tmp_path):
    """The loaded-library state of a CPU-only build under a CUDA torch, with a (fake) toolkit present."""
    toolkit = tmp_path / "cuda"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "nvcc").write_text("#!/bin/sh\n")
    monkeypatch.setenv("CUDA_HOME", str(toolkit))
    monkeypatch.delenv("SOFTPOOL_CUDA", raising=False)
    monkeypatch.setattr(_extension, "EXTENSION_ERROR", None)
    monkeypatch.setattr(_extension, "HAVE_EXTENSION", True)
    monkeypatch.setattr(_extension, "_KERNELS", {"cpu": True, "cuda": False})
    monkeypatch.setattr(_extension, "_TORCH_CUDA", "13.0")
    monkeypatch.setattr(_extension, "_warned_devices", set())
    record = {"torch": str(torch.__version__), "torch_cuda": "13.0", "cuda": False}
    monkeypatch.setattr(_extension, "BUILD_RECORD", record)
    return record, toolkit


def _import_warnings() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _extension._warn_at_import()
    return [str(w.message) for w in caught]


def test_warns_when_a_toolkit_could_give_the_missing_cuda_kernels(cpu_only_build):
    record, toolkit = cpu_only_build
    record.update(cuda_request="auto", cuda_toolkit_found=False)
    (message,) = _import_warnings()
    assert "no CUDA kernels (no CUDA toolkit was found when it was built)" in message
    assert f"a CUDA toolkit is installed ({toolkit})" in message
    assert "SOFTPOOL_CUDA=1 " in message and _extension.rebuild_command(with_cuda=True) in message
    # and a CUDA tensor later does not warn a second time
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _extension.warn_fallback_once("cuda")
    assert caught == []
    assert not _extension.kernels_for("cuda") and _extension.kernels_for("cpu")


def test_no_warning_for_a_deliberate_cpu_only_build(cpu_only_build, monkeypatch):
    record, _ = cpu_only_build
    record.update(cuda_request="0", cuda_toolkit_found=True)
    assert _import_warnings() == []
    record.update(cuda_request="auto")
    monkeypatch.setenv("SOFTPOOL_CUDA", "0")  # the user says: no CUDA kernels wanted
    assert _import_warnings() == []


def test_no_warning_without_a_toolkit_or_without_cuda_torch(cpu_only_build, monkeypatch):
    record, _ = cpu_only_build
    record.update(cuda_request="auto", cuda_toolkit_found=False)
    monkeypatch.setattr(_buildinfo, "find_cuda_home", lambda: None)
    assert _import_warnings() == []
    monkeypatch.setattr(_extension, "_TORCH_CUDA", None)
    assert _import_warnings() == []


def test_a_cuda_tensor_without_cuda_kernels_warns_once_with_the_command(cpu_only_build):
    record, _ = cpu_only_build
    record.update(cuda_request="0", cuda_toolkit_found=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _extension.warn_fallback_once("cuda")
        _extension.warn_fallback_once("cuda")
    (message,) = [str(w.message) for w in caught]
    assert "built with SOFTPOOL_CUDA=0" in message and "CUDA tensors use the slow" in message
    assert "SOFTPOOL_CUDA=1 " in message


# --- the rebuild command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "installed", "expected"),
    [
        ("checkout", (None, False), "cd {root} && {py} setup.py build_ext --inplace"),
        (
            "checkout",
            ("{root}", True),
            "cd {root} && {py} -m pip install --no-build-isolation --no-deps -e .",
        ),
        (
            "site",
            ("{src}", False),
            "{py} -m pip install --no-build-isolation --no-deps --force-reinstall {src}",
        ),
        (
            "site",
            (None, False),
            "{py} -m pip install --no-build-isolation --no-deps --force-reinstall "
            "--no-binary softpool_video softpool_video=={version}",
        ),
    ],
)
def test_rebuild_command(tmp_path, monkeypatch, layout, installed, expected):
    root = tmp_path / "project"
    (root / "softpool_video").mkdir(parents=True)
    src = tmp_path / "source dir"
    src.mkdir()
    if layout == "checkout":
        (root / "setup.py").write_text("")
    source, editable = installed
    fill = {"root": str(root), "src": str(src), "py": sys.executable, "version": "9.9.9"}
    result = (Path(source.format(**fill)) if source else None, editable)
    monkeypatch.setattr(_buildinfo, "_installation", lambda package_dir: result)
    command = _buildinfo.rebuild_command(root / "softpool_video", "9.9.9")
    quoted = {k: shlex.quote(v) for k, v in fill.items()}
    assert command == expected.format(**quoted)
    assert (
        _buildinfo.rebuild_command(root / "softpool_video", "9.9.9", with_cuda=True).count("SOFTPOOL_CUDA=1 ")
        == 1
    )
