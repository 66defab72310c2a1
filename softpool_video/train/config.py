"""Configuration: where the Hydra configs live, composing them in code, validating them, building from them.

The configs are the repository's ``conf/`` directory (``train.yaml``, ``eval.yaml`` and the groups
``data/``, ``model/``, ``pooling/``, ``optim/``, ``schedule/``, ``trainer/``, ``logger/``,
``experiment/``), installed with the package as ``softpool_video/conf`` (:func:`conf_dir` finds
either). Command-line tools use ``hydra.main``; code (tests, the demo) uses :func:`compose_config`
with the same override syntax.

Your own configs live in a directory of the same layout (``my_conf/experiment/x.yaml``,
``my_conf/data/y.yaml``), given with ``--config-dir my_conf`` on the command line or
``compose_config(..., config_dirs=["my_conf"])``. They come *before* the packaged configs in the
search path, so a file there adds an option to its group or replaces the packaged option of the same
name. (Hydra itself appends ``--config-dir`` after the primary config directory, where a same-named
file is silently ignored; :func:`user_configs_first` fixes the order for our configs.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import softpool_video

__all__ = [
    "POOLINGS",
    "PRECISIONS",
    "ConfigError",
    "build_model_from_config",
    "build_split",
    "compose_config",
    "conf_dir",
    "config_dirs_in_argv",
    "group_choices",
    "resolve_precision",
    "to_plain_dict",
    "user_configs_first",
    "validate_train_config",
]

PRECISIONS = ("fp32", "bf16", "fp16")
POOLINGS = ("soft", "max", "avg", "original")
AGGREGATIONS = ("mean", "sum", "max")


class ConfigError(ValueError):
    """The configuration asks for something impossible; the message names the key and the choices.

    The command-line tools print these as one line (no traceback) and exit with status 2.
    """


def conf_dir() -> Path:
    """The directory of the packaged Hydra configs (the one holding ``train.yaml`` and ``eval.yaml``).

    An installed package (wheel) carries them as ``softpool_video/conf``; a source checkout (run
    from the repository, ``PYTHONPATH``, or an editable install) has them in the repository's
    ``conf/``, next to the package.
    """
    import importlib.resources

    package = Path(softpool_video.__file__).resolve().parent
    candidates = [Path(str(importlib.resources.files("softpool_video") / "conf")), package.parent / "conf"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return path
    raise FileNotFoundError(
        "softpool_video's configuration files are missing (looked for train.yaml in "
        f"{' and '.join(str(path) for path in candidates)}); reinstall the package"
    )


def group_choices(group: str, config_dirs: Sequence[str | os.PathLike] = ()) -> list[str]:
    """Names of the options of a config group, e.g. ``group_choices("data")``: the packaged ones and
    those in ``config_dirs`` (your own config directories)."""
    roots = [Path(directory) for directory in config_dirs] + [conf_dir()]
    return sorted({path.stem for root in roots for path in (root / group).glob("*.yaml")})


# --- Search path: your config directories before the packaged ones -------------------------------

_user_config_dirs: tuple[Path, ...] = ()


def _prepend_user_config_dirs(search_path) -> None:
    """Put the active user config directories in front of our packaged configs (and only ours)."""
    from hydra.core.config_search_path import SearchPathQuery

    if not _user_config_dirs:
        return
    ours = conf_dir().resolve()
    # hydra.main gives "file:///abs/conf", initialize_config_dir the bare "/abs/conf"
    main = [e.path.removeprefix("file://") for e in search_path.get_path() if e.provider == "main"]
    if not any("://" not in path and Path(path).resolve() == ours for path in main):
        return  # another Hydra application in this process: leave its search path alone
    for directory in _user_config_dirs:
        search_path.prepend(
            provider="softpool_video user configs",
            path=f"file://{directory}",
            anchor=SearchPathQuery(provider="main"),
        )


_search_path_plugin = None


def _register_search_path_plugin() -> None:
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class UserConfigsFirst(SearchPathPlugin):
        """Hydra calls this for every search path it builds (hydra.main and initialize_config_dir)."""

        def manipulate_search_path(self, search_path) -> None:
            _prepend_user_config_dirs(search_path)

    global _search_path_plugin
    if _search_path_plugin is None:
        _search_path_plugin = UserConfigsFirst
        Plugins.instance().register(UserConfigsFirst)


def config_dirs_in_argv(argv: Sequence[str]) -> list[str]:
    """The ``--config-dir DIR`` of a Hydra command line (``--config-dir=DIR``, ``-cd DIR`` too).

    Hydra keeps the last one when the flag is repeated; so does this.
    """
    found: list[str] = []
    args = list(argv)
    for index, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and index + 1 < len(args):
            found.append(args[index + 1])
        elif arg.startswith("--config-dir="):
            found.append(arg.split("=", 1)[1])
    return found[-1:]


@contextlib.contextmanager
def user_configs_first(config_dirs: Sequence[str | os.PathLike]):
    """Within this block, Hydra search paths of our configs start with ``config_dirs``.

    ``config_dirs`` are your own config directories (the layout of ``conf/``), searched in the given
    order before the packaged configs: a file there adds an option to its group or replaces the
    packaged option of the same name (``train.yaml`` included). A directory that does not exist is
    left to Hydra to report. The command-line entry points wrap ``hydra.main`` in this with
    :func:`config_dirs_in_argv`; :func:`compose_config` takes ``config_dirs``.
    """
    global _user_config_dirs
    _register_search_path_plugin()
    saved = _user_config_dirs
    _user_config_dirs = tuple(Path(os.path.abspath(directory)) for directory in config_dirs)
    try:
        yield
    finally:
        _user_config_dirs = saved


def compose_config(
    config_name: str = "train",
    overrides: Sequence[str] = (),
    config_dirs: Sequence[str | os.PathLike] = (),
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style ``overrides`` (``["trainer.epochs=2"]``).

    Works outside ``hydra.main`` (tests, notebooks, the demo). ``config_dirs`` are your own config
    directories, searched before the packaged configs (see :func:`user_configs_first`); like
    ``--config-dir``, a missing one is an error. Interpolations are left unresolved, as Hydra leaves
    them; the trainer resolves the config once at start.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        # Inside a running Hydra app compose with the app's search path (its --config-dir included);
        # config_dirs cannot change it there.
        return compose(config_name=config_name, overrides=list(overrides))
    for directory in config_dirs:
        if not Path(directory).is_dir():
            raise ConfigError(f"config directory {directory} does not exist")
    with (
        user_configs_first(config_dirs),
        initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"),
    ):
        return compose(config_name=config_name, overrides=list(overrides))


def to_plain_dict(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as plain Python containers (what checkpoints and ``config.yaml`` store)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return dict(cfg)


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


def resolve_precision(
    precision: str, device: torch.device, training: bool = True
) -> tuple[torch.dtype | None, bool]:
    """``trainer.precision`` -> ``(autocast dtype or None, use GradScaler)``, checked against the device.

    bf16 *training* on CPU is refused: the oneDNN bf16 backward of ``Conv3d`` with ``(3, 1, 1)``
    kernels (every (2+1)D block) returns NaN weight gradients at random in torch 2.14. Inference in
    bf16 on CPU (``softpool-eval trainer.precision=bf16``) is fine.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is not one of {_choices(PRECISIONS)}")
    if precision == "fp32":
        return None, False
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                "trainer.precision=fp16 needs a CUDA device (fp16 autocast with GradScaler); "
                f"this run is on {device.type}: use trainer.precision=bf16 or fp32"
            )
        return torch.float16, True
    if device.type == "cpu" and training:
        raise ConfigError(
            "trainer.precision=bf16 is not supported for training on CPU (the bf16 Conv3d backward of "
            "oneDNN gives NaN weight gradients); use trainer.precision=fp32 on CPU, bf16 on a GPU"
        )
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision=bf16 is not supported by {torch.cuda.get_device_name(device)}; "
            "use trainer.precision=fp16 (or fp32)"
        )
    return torch.bfloat16, False


def _get(cfg: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) and not isinstance(node, DictConfig):
            return default
        if part not in node:
            return default
        node = node[part]
    return node


def validate_train_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Check names and ranges before anything expensive happens; raise :class:`ConfigError`."""
    from softpool_video.models import list_models
    from softpool_video.train.optim import OPTIMIZERS, SCHEDULES

    for section in ("data", "model", "pooling", "optim", "schedule", "trainer"):
        if _get(cfg, section) is None:
            raise ConfigError(f"config has no {section!r} section; select one with {section}=NAME")
    model_name = _get(cfg, "model.name")
    if model_name not in list_models():
        raise ConfigError(
            f"model.name={model_name!r} is not a registered model; choose from: {_choices(list_models())}"
        )
    pool = _get(cfg, "pooling.pool")
    if pool not in POOLINGS:
        raise ConfigError(f"pooling.pool={pool!r} is not one of {_choices(POOLINGS)}")
    if _get(cfg, "optim.name") not in OPTIMIZERS:
        raise ConfigError(f"optim.name={_get(cfg, 'optim.name')!r} is not one of {_choices(OPTIMIZERS)}")
    if _get(cfg, "schedule.name") not in SCHEDULES:
        raise ConfigError(f"schedule.name={_get(cfg, 'schedule.name')!r} is not one of {_choices(SCHEDULES)}")
    precision = _get(cfg, "trainer.precision", "fp32")
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is not one of {_choices(PRECISIONS)}")
    for key in (
        "trainer.epochs",
        "trainer.accumulate_grad_batches",
        "trainer.eval_every_n_epochs",
        "data.batch_size",
    ):
        value = _get(cfg, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{key}={value!r} must be an integer >= 1")
    clip = _get(cfg, "trainer.grad_clip_norm")
    if clip is not None and not clip > 0:
        raise ConfigError(f"trainer.grad_clip_norm={clip!r} must be > 0 (or null to disable clipping)")
    smoothing = _get(cfg, "loss.label_smoothing", 0.0)
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"loss.label_smoothing={smoothing!r} must lie in [0, 1)")
    aggregation = _get(cfg, "eval.aggregation", "mean")
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"eval.aggregation={aggregation!r} is not one of {_choices(AGGREGATIONS)}")
    resume = _get(cfg, "resume")
    if resume not in (None, "auto") and not Path(str(resume)).is_file():
        raise ConfigError(
            f"resume={resume!r}: no such checkpoint file (use resume=auto or a path to last.pt)"
        )


def build_split(data_cfg: Any, split: str) -> Any:
    """``softpool_video.data.build_dataset(data_cfg, split)``, with its configuration problems (bad
    key, missing root or list file, no videos left) reported as :class:`ConfigError`."""
    from softpool_video.data import build_dataset

    try:
        return build_dataset(data_cfg, split)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise ConfigError(f"data (split={split}): {error}") from error


def build_model_from_config(
    cfg: DictConfig | Mapping[str, Any], num_classes: int, pretrained: bool = True
) -> torch.nn.Module:
    """The run's model from its ``model`` (name, clip size, ``kwargs``) and ``pooling`` sections.

    ``pretrained=False`` skips ``model.pretrained`` (used when the weights come from a checkpoint).
    """
    from softpool_video.models import MissingDependencyError, list_models
    from softpool_video.models import build_model_from_config as build

    name = _get(cfg, "model.name")
    if name not in list_models():
        raise ConfigError(
            f"model.name={name!r} is not a registered model; choose from: {_choices(list_models())}"
        )
    model_cfg = to_plain_dict(cfg["model"]) if isinstance(cfg["model"], DictConfig) else dict(cfg["model"])
    if not pretrained:
        model_cfg["pretrained"] = None
    pooling_cfg = (
        to_plain_dict(cfg["pooling"]) if isinstance(cfg["pooling"], DictConfig) else dict(cfg["pooling"])
    )
    try:
        return build(model_cfg, num_classes, pooling_cfg)
    except MissingDependencyError as error:  # an optional package this installation lacks
        raise ConfigError(f"model.name={name!r}: {error}") from error
