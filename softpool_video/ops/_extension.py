"""Loading the compiled operator library.

``softpool_video._C`` defines the ops ``torch.ops.softpool_video.*`` with CPU (and, when built,
CUDA) kernels. Their Python-side pieces (fake kernels, autograd, batching rules) are registered in
``softpool_video/ops/_registration.py``. Without the extension, the functional API falls back to
the pure-PyTorch reference (and warns once).

Loading checks the build record compiled into ``_C`` (softpool_video/_buildinfo.py) *before*
importing it: a ``_C`` built for another torch is not loaded (that can fail, or load and crash
later); the package warns once with the exact rebuild command and uses the reference instead.
:func:`extension_info` reports what the library was built for.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch

from softpool_video import _buildinfo
from softpool_video._version import __version__


class ExtensionMismatchError(ImportError):
    """``softpool_video._C`` was built for another torch than the running one."""


def _find_library() -> Path | None:
    try:
        spec = importlib.util.find_spec("softpool_video._C")
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


_PACKAGE_DIR = Path(__file__).resolve().parents[1]
LIBRARY_PATH: Path | None = _find_library()
#: The build record of ``_C`` (see softpool_video/_buildinfo.py); None if unbuilt or built without one.
BUILD_RECORD: dict | None = _buildinfo.read_record(LIBRARY_PATH) if LIBRARY_PATH else None
_TORCH_VERSION, _TORCH_CUDA = str(torch.__version__), torch.version.cuda
#: Why ``_C`` does not fit the running torch ("built for torch X, but torch Y is running"), or None.
_MISMATCH: str | None = _buildinfo.mismatch(BUILD_RECORD, _TORCH_VERSION, _TORCH_CUDA)


def rebuild_command(with_cuda: bool = False) -> str:
    """The command that rebuilds ``_C`` for the running Python and torch."""
    return _buildinfo.rebuild_command(_PACKAGE_DIR, __version__, with_cuda=with_cuda)


def _load() -> Exception | None:
    if LIBRARY_PATH is None:
        return ImportError("softpool_video._C was not built")
    if _MISMATCH is not None:
        return ExtensionMismatchError(f"{LIBRARY_PATH.name} was not loaded: it was {_MISMATCH}")
    try:
        from softpool_video import _C  # noqa: F401  (importing registers the ops)
    except ImportError as error:  # e.g. built before build records, against another torch
        return error
    return None


EXTENSION_ERROR: Exception | None = _load()
HAVE_EXTENSION = EXTENSION_ERROR is None


def _kernel_registered(dispatch_key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("softpool_video::soft_pool3d", dispatch_key)


_KERNELS = {"cpu": _kernel_registered("CPU"), "cuda": _kernel_registered("CUDA")} if HAVE_EXTENSION else {}
_warned_fallback = False
_warned_devices: set[str] = set()


def kernels_for(device_type: str) -> bool:
    """Whether SoftPool on ``device_type`` tensors runs compiled kernels (otherwise: the reference).

    ``meta`` (and fake tensors under torch.compile) use the registered fake kernels.
    """
    if not HAVE_EXTENSION:
        return False
    if device_type == "meta":
        return True
    return _KERNELS.get(device_type, False)


def _no_cuda_reason() -> str:
    if BUILD_RECORD is None:
        return "it was built without them"
    if BUILD_RECORD.get("cuda_request") == "0":
        return "it was built with SOFTPOOL_CUDA=0"
    if not BUILD_RECORD.get("cuda_toolkit_found"):
        return "no CUDA toolkit was found when it was built"
    return f"torch {BUILD_RECORD.get('torch')} had no CUDA when it was built"


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def warn_fallback_once(device_type: str | None = None) -> None:
    """Warn (once) that SoftPool runs the slow reference: no ``_C`` at all, or no kernels for the device."""
    global _warned_fallback
    if not HAVE_EXTENSION:
        if not _warned_fallback:
            _warned_fallback = True
            _warn(
                f"softpool_video._C is not available ({EXTENSION_ERROR}); using the slow pure-PyTorch "
                f"SoftPool reference. Rebuild it with: {rebuild_command()}"
            )
        return
    if device_type is None or device_type in _warned_devices:
        return
    _warned_devices.add(device_type)
    if device_type == "cuda":
        _warn(
            f"softpool_video._C has no CUDA kernels ({_no_cuda_reason()}); CUDA tensors use the slow "
            "pure-PyTorch SoftPool reference. Rebuild it with the CUDA kernels (a CUDA toolkit is "
            f"needed, CUDA_HOME selects it): {rebuild_command(with_cuda=True)}"
        )
    else:
        _warn(f"softpool_video._C has no {device_type} kernels; using the pure-PyTorch SoftPool reference")


def _warn_at_import() -> None:
    """A ``_C`` built for another torch, or without CUDA although torch and a toolkit have it."""
    global _warned_fallback
    if isinstance(EXTENSION_ERROR, ExtensionMismatchError):
        _warned_fallback = True
        _warn(
            f"softpool_video._C was {_MISMATCH}, so it was not loaded and "
            "SoftPool uses the slow pure-PyTorch reference. Rebuild it for this torch with: "
            f"{rebuild_command()}"
        )
    elif (
        HAVE_EXTENSION
        and not _KERNELS["cuda"]
        and _TORCH_CUDA is not None
        and os.environ.get("SOFTPOOL_CUDA", "").strip() != "0"
        and (BUILD_RECORD or {}).get("cuda_request") != "0"
        and _buildinfo.find_cuda_home() is not None
    ):
        _warned_devices.add("cuda")
        _warn(
            f"softpool_video._C has no CUDA kernels ({_no_cuda_reason()}), but torch {_TORCH_VERSION} has "
            f"CUDA and a CUDA toolkit is installed ({_buildinfo.find_cuda_home()}): CUDA tensors would use "
            "the slow pure-PyTorch reference. Rebuild it with the CUDA kernels: "
            f"{rebuild_command(with_cuda=True)}"
        )


_warn_at_import()


def extension_info() -> dict:
    """What ``softpool_video._C`` is: loaded or not, kernels per backend, and what it was built for.

    Keys: ``loaded``; ``cpu``, ``cuda`` (kernels usable now); ``torch_version``, ``torch_cuda_version``
    (the torch it was compiled against), ``cuda_version`` (the CUDA toolkit of its CUDA kernels, None
    without them), ``cuda_archs`` (their GPU architectures), ``cpu_target`` (the x86-64 code of the
    CPU vector loops: ``clones``, or the one level of a ``SOFTPOOL_CPU_TARGET`` build),
    ``version`` (softpool_video's), ``cxx11_abi``, ``python``, ``path``; ``running_torch_version``;
    and when it did not load, ``error`` and ``rebuild_command``. Build fields are None for a library
    built without a record.
    """
    record = BUILD_RECORD or {}
    info = {
        "loaded": HAVE_EXTENSION,
        "cpu": kernels_for("cpu"),
        "cuda": kernels_for("cuda"),
        "torch_version": record.get("torch"),
        "torch_cuda_version": record.get("torch_cuda"),
        "cuda_version": record.get("cuda_version"),
        "cuda_archs": record.get("cuda_archs"),
        "cpu_target": record.get("cpu_target"),
        "version": record.get("softpool_video"),
        "cxx11_abi": record.get("cxx11_abi"),
        "python": record.get("python"),
        "path": str(LIBRARY_PATH) if LIBRARY_PATH else None,
        "running_torch_version": _TORCH_VERSION,
    }
    if not HAVE_EXTENSION:
        info["error"] = str(EXTENSION_ERROR)
        info["rebuild_command"] = rebuild_command()
    elif not info["cuda"] and _TORCH_CUDA is not None:
        info["rebuild_command"] = rebuild_command(with_cuda=True)
    return info
