"""The device option shared by every tool: ``auto``, ``cpu``, ``cuda`` (or ``gpu``), ``cuda:N``.

``device=`` on the command line of predict and the benchmarks, ``trainer.accelerator`` in the
training configs (``device=`` there too, as a shortcut); one parser, one set of messages.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(spec: str | torch.device = "auto", option: str = "device") -> torch.device:
    """``"auto"`` (the GPU when there is one), ``"cpu"``, ``"cuda"``/``"gpu"`` or ``"cuda:N"`` -> a
    device of this machine.

    Raises:
        ValueError: naming ``option`` when ``spec`` is malformed or names a GPU this machine lacks.
    """
    if isinstance(spec, torch.device):
        resolved: torch.device | None = spec
        text = str(spec)
    else:
        text = str(spec).strip().lower()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if text == "gpu" or text.startswith("gpu:"):
            text = "cuda" + text[3:]
        try:
            resolved = torch.device(text)
        except (RuntimeError, TypeError, ValueError):
            resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"{option} must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{option}={text} but no CUDA GPU is available here (torch.cuda.is_available() is False): "
                f"use {option}=cpu or {option}=auto"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"{option}={text} but this machine has {torch.cuda.device_count()} GPU(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    return resolved
