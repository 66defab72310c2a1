"""Loading the compiled operator library.

``softpool_video._C`` defines the ops ``torch.ops.softpool_video.*`` with CPU (and, when built,
CUDA) kernels. Their Python-side pieces (fake kernels, autograd, batching rules) are registered in
``softpool_video/ops/_registration.py``. Without the extension, the functional API falls back to
the pure-PyTorch reference (and warns once).
"""

from __future__ import annotations

import warnings

import torch

try:
    from softpool_video import _C  # noqa: F401  (importing registers the ops)

    EXTENSION_ERROR: Exception | None = None
except ImportError as error:  # not built, or built against another torch
    EXTENSION_ERROR = error

HAVE_EXTENSION = EXTENSION_ERROR is None
_warned_fallback = False


def warn_fallback_once() -> None:
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            "softpool_video._C is not available "
            f"({EXTENSION_ERROR}); using the slow pure-PyTorch SoftPool reference. "
            "Build it with `pip install --no-build-isolation -e .` (see README).",
            RuntimeWarning,
            stacklevel=3,
        )


def extension_info() -> dict:
    """What was built: whether the extension loaded and which backends have kernels."""
    info = {"loaded": HAVE_EXTENSION, "cpu": False, "cuda": False}
    if HAVE_EXTENSION:
        for key in ("cpu", "cuda"):
            info[key] = torch._C._dispatch_has_kernel_for_dispatch_key(
                "softpool_video::soft_pool3d", key.upper()
            )
    else:
        info["error"] = str(EXTENSION_ERROR)
    return info
