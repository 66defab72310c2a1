"""Configuration: where the Hydra configs live, composing them in code, validating them, building from them.

Everything a run can get wrong is checked here before any work (no run folder, no file written):
:func:`validate_train_config` checks every key's type and range, the device and the files it names;
:func:`reconcile_clip_shape` makes the model and the data agree on frames, crop size and SlowFast
alpha (deriving what is unset, refusing what conflicts); :func:`synthetic_generation` decides whether
a missing dataset may be generated (only the synthetic one, only where asked for).

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
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import softpool_video
from softpool_video.cli import UsageError
from softpool_video.constants import AGGREGATIONS, POOLING_CHOICES, PRECISIONS

__all__ = [
    "POOLINGS",
    "PRECISIONS",
    "ConfigError",
    "build_model_from_config",
    "build_split",
    "compose_config",
    "conf_dir",
    "config_dirs_in_argv",
    "data_config_for_build",
    "group_choices",
    "reconcile_clip_shape",
    "resolve_accelerator",
    "resolve_precision",
    "synthetic_generation",
    "to_plain_dict",
    "user_configs_first",
    "validate_train_config",
]

POOLINGS = POOLING_CHOICES


class ConfigError(UsageError):
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
    """The resolved config as plain Python containers (what checkpoints and ``config.yaml`` store).

    Raises :class:`ConfigError` for an interpolation that does not resolve (``${model.nope}``).
    """
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except OmegaConfBaseException as error:
            key = getattr(error, "full_key", None)
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(f"{key or 'config'}: {first}") from None
    return dict(cfg)


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


_ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


def resolve_accelerator(accelerator: Any) -> str:
    """``trainer.accelerator`` (auto | cpu | gpu | cuda, or ``device=`` on the command line) -> the
    device type this process will use, ``"cpu"`` or ``"cuda"``; a GPU that is not there is an error."""
    value = str(accelerator).strip().lower()
    if value not in _ACCELERATORS and not value.startswith(("cuda:", "gpu:")):
        raise ConfigError(
            f"trainer.accelerator={accelerator!r} is not one of auto, cpu, gpu (or cuda, cuda:N); "
            "device=... sets it too"
        )
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={value} needs a CUDA GPU but none is visible here "
            "(torch.cuda.is_available() is False): use trainer=cpu, or trainer.accelerator=cpu (device=cpu)"
        )
    return "cuda"


def resolve_precision(
    precision: str, device: torch.device, training: bool = True
) -> tuple[torch.dtype | None, bool]:
    """``trainer.precision`` -> ``(autocast dtype or None, use GradScaler)``, checked against the device.

    ``auto`` is bf16 on a GPU that supports it (fp16 with a GradScaler on older GPUs) and fp32 on a
    CPU, so one config (``trainer=ddp``) trains and evaluates correctly on both.

    bf16 *training* on CPU is refused: the oneDNN bf16 backward of ``Conv3d`` with ``(3, 1, 1)``
    kernels (every (2+1)D block) returns NaN weight gradients at random in torch 2.14. Inference in
    bf16 on CPU (``softpool-eval trainer.precision=bf16``) is fine, when asked for explicitly.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r} is not one of {_choices(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None, False
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return None, False
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                "trainer.precision=fp16 needs a CUDA device (fp16 autocast with GradScaler); "
                f"this run is on {device.type}: use trainer.precision=bf16 or fp32"
            )
        return torch.float16, training
    if device.type == "cpu" and training:
        raise ConfigError(
            "trainer.precision=bf16 is not supported for training on CPU (the bf16 Conv3d backward of "
            "oneDNN gives NaN weight gradients); use trainer.precision=fp32 (or auto) on CPU, bf16 on a GPU"
        )
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision=bf16 is not supported by {torch.cuda.get_device_name(device)}; "
            "use trainer.precision=fp16 (or fp32, or auto)"
        )
    return torch.bfloat16, False


def precision_name(dtype: torch.dtype | None) -> str:
    """The autocast dtype as a ``trainer.precision`` name (``None`` -> ``fp32``)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


_MISSING = object()


def _get(cfg: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) and not isinstance(node, DictConfig):
            return default
        if part not in node:
            return default
        node = node[part]
    return node


class _Checks:
    """Type and range checks of config values, each raising :class:`ConfigError` naming the key."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg

    def get(self, key: str, default: Any = None) -> Any:
        return _get(self.cfg, key, default)

    def integer(self, key: str, minimum: int | None = None, optional: bool = True) -> int | None:
        value = self.get(key)
        if value is None and optional:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)
        if not ok:
            accepted = "an integer" + (f" >= {minimum}" if minimum is not None else "")
            raise ConfigError(f"{key}={value!r} must be {accepted}" + (" (or null)" if optional else ""))
        return value

    def number(
        self,
        key: str,
        minimum: float | None = None,
        below: float | None = None,
        positive: bool = False,
        optional: bool = True,
    ) -> float | None:
        value = self.get(key)
        if value is None and optional:
            return None
        number = None
        if not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        ok = (
            number is not None
            and math.isfinite(number)
            and not (positive and number <= 0)
            and not (minimum is not None and number < minimum)
            and not (below is not None and number >= below)
        )
        if not ok:
            accepted = "a positive number" if positive else "a number"
            if minimum is not None and below is not None:
                accepted += f" in [{minimum:g}, {below:g})"
            elif minimum is not None:
                accepted += f" >= {minimum:g}"
            elif below is not None:
                accepted += f" < {below:g}"
            raise ConfigError(f"{key}={value!r} must be {accepted}")
        return number

    def choice(self, key: str, choices: Sequence[Any], default: Any = _MISSING) -> Any:
        value = self.get(key, None if default is _MISSING else default)
        if value not in choices:
            from softpool_video.cli import did_you_mean

            hint = did_you_mean(str(value), [str(c) for c in choices]) if isinstance(value, str) else ""
            raise ConfigError(f"{key}={value!r} is not one of {_choices([str(c) for c in choices])}{hint}")
        return value

    def boolean(self, key: str, optional: bool = True) -> bool | None:
        value = self.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be true or false")
        return value

    def number_list(
        self, key: str, length: int | None = None, minimum: float = 0.0, below: float | None = None
    ):
        value = self.get(key)
        if value is None:
            return None
        items = (
            list(value) if isinstance(value, Sequence | ListConfig) and not isinstance(value, str) else None
        )
        ok = items is not None and (length is None or len(items) == length)
        if ok:
            for item in items:
                if (
                    isinstance(item, bool)
                    or not isinstance(item, int | float)
                    or not math.isfinite(item)
                    or item < minimum
                    or (below is not None and item >= below)
                ):
                    ok = False
        if not ok:
            size = f"{length} " if length else ""
            span = f" in [{minimum:g}, {below:g})" if below is not None else f" >= {minimum:g}"
            raise ConfigError(f"{key}={value!r} must be a list of {size}numbers{span}")
        return items


def validate_train_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Check names, types and ranges of every key before anything expensive happens.

    Also checks what can be checked without loading anything big: the device, the precision on that
    device, that ``model.pretrained`` and ``resume`` name existing files. Raises :class:`ConfigError`.
    """
    from softpool_video.models import list_models
    from softpool_video.models.registry import WHERE_CHOICES, get_model_spec
    from softpool_video.train.loggers import LOGGERS
    from softpool_video.train.optim import OPTIMIZERS, SCHEDULES

    check = _Checks(cfg)
    for section in ("data", "model", "pooling", "optim", "schedule", "trainer"):
        if not isinstance(_get(cfg, section), Mapping | DictConfig):
            raise ConfigError(f"config has no {section!r} section; select one with {section}=NAME")
    model_name = _get(cfg, "model.name")
    if model_name not in list_models():
        from softpool_video.cli import did_you_mean

        hint = did_you_mean(str(model_name), list_models())
        raise ConfigError(
            f"model.name={model_name!r} is not a registered model{hint}; "
            f"choose from: {_choices(list_models())}"
        )
    check.integer("model.num_frames", 1)
    check.integer("model.crop_size", 1)
    check.integer("model.alpha", 1)
    kwargs = _get(cfg, "model.kwargs")
    if kwargs is not None and not isinstance(kwargs, Mapping | DictConfig):
        raise ConfigError(f"model.kwargs={kwargs!r} must be a mapping of builder options (or null)")
    _check_pretrained(_get(cfg, "model.pretrained"), get_model_spec(str(model_name)))

    check.choice("pooling.pool", POOLING_CHOICES)
    check.choice("pooling.where", WHERE_CHOICES, default="all")
    check.number("pooling.temperature", positive=True)
    learned = check.boolean("pooling.learn_temperature")
    if check.boolean("pooling.temperature_per_channel") and not learned:
        raise ConfigError("pooling.temperature_per_channel=true needs pooling.learn_temperature=true")
    pool = _get(cfg, "pooling.pool")
    if learned and pool != "soft":
        raise ConfigError(f"pooling.learn_temperature=true needs pooling.pool=soft, got pooling.pool={pool}")

    check.choice("optim.name", OPTIMIZERS)
    check.number("optim.lr", positive=True, optional=False)
    check.number("optim.weight_decay", minimum=0.0)
    check.boolean("optim.no_decay_norm_and_bias")
    if _get(cfg, "optim.name") == "sgd":
        check.number("optim.momentum", minimum=0.0, below=1.0)
        check.boolean("optim.nesterov")
    else:
        check.number_list("optim.betas", length=2, minimum=0.0, below=1.0)
        check.number("optim.eps", positive=True)
    check.choice("schedule.name", SCHEDULES)
    check.number("schedule.warmup_epochs", minimum=0.0)
    check.number("schedule.warmup_start_factor", positive=True)
    check.number("schedule.min_lr_factor", minimum=0.0)
    check.number("schedule.gamma", positive=True)
    check.number_list("schedule.milestones", minimum=0.0)

    check.choice("trainer.precision", PRECISIONS, default="fp32")
    for key in ("trainer.epochs", "trainer.accumulate_grad_batches", "trainer.eval_every_n_epochs"):
        check.integer(key, 1, optional=False)
    check.integer("trainer.log_every_n_steps", 1)
    check.integer("trainer.limit_train_batches", 1)
    check.integer("trainer.limit_val_batches", 1)
    fast = _get(cfg, "trainer.fast_dev_run")
    if fast is not None and not isinstance(fast, bool) and not (isinstance(fast, int) and fast >= 0):
        raise ConfigError(f"trainer.fast_dev_run={fast!r} must be true, false or a number of batches >= 0")
    clip = _get(cfg, "trainer.grad_clip_norm")
    if clip is not None:
        check.number("trainer.grad_clip_norm", positive=True)
    threads = _get(cfg, "trainer.num_threads")
    if threads not in (None, "auto") and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ConfigError(f"trainer.num_threads={threads!r} must be null, auto or an integer >= 1")
    check.choice("trainer.monitor_mode", ("max", "min"), default="max")
    from softpool_video.train.trainer import EPOCH_COLUMNS

    monitor = _get(cfg, "trainer.monitor", "val_video_top1")
    if monitor not in EPOCH_COLUMNS[2:]:
        raise ConfigError(
            f"trainer.monitor={monitor!r} is not a metric; choose from: {_choices(EPOCH_COLUMNS[2:])}"
        )
    for key in (
        "progress_bar",
        "deterministic",
        "sync_batchnorm",
        "find_unused_parameters",
        "cudnn_benchmark",
    ):
        check.boolean(f"trainer.{key}")
    check.number("trainer.timeout_minutes", positive=True)
    resolve_accelerator(_get(cfg, "trainer.accelerator", "auto"))

    check.integer("data.batch_size", 1, optional=False)
    check_loader_settings(_get(cfg, "data"))
    check.boolean("data.generate")
    check.integer("data.num_frames", 1)
    check.integer("data.train_crop_size", 1)
    check.integer("data.test_crop_size", 1)

    check.number("loss.label_smoothing", minimum=0.0, below=1.0)
    # checked even while mixup is off: a wrong value must not wait for the day it is switched on
    check.boolean("mixup.enabled")
    check.number("mixup.mixup_alpha", minimum=0.0)
    check.number("mixup.cutmix_alpha", minimum=0.0)
    for key in ("mixup.prob", "mixup.switch_prob"):
        value = check.number(key, minimum=0.0)
        if value is not None and value > 1:
            raise ConfigError(f"{key}={value:g} must be a probability in [0, 1]")
    check.choice("eval.aggregation", AGGREGATIONS, default="mean")
    check.integer("eval.test_num_clips", 1)
    test_crops = _get(cfg, "eval.test_num_crops")
    if test_crops not in (None, 1, 3):
        raise ConfigError(f"eval.test_num_crops={test_crops!r} must be 1, 3 or null")
    check.choice("eval.test_checkpoint", ("last", "best"), default="last")
    check.boolean("test")
    try:
        name = _get(cfg, "name")
    except OmegaConfBaseException as error:  # name=${nope}: reported where Hydra would report it
        raise ConfigError(f"name: {str(error).splitlines()[0]}") from None
    if name is not None and (not str(name).strip() or "/" in str(name) or str(name) in (".", "..")):
        raise ConfigError(
            f"name={name!r} must be a plain folder name (no '/'): runs go to output_root/name/<time>"
        )
    seed = _get(cfg, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")
    for name in _get(cfg, "logger") or {}:
        if name not in LOGGERS:
            raise ConfigError(f"logger.{name}: unknown logger; choose from {_choices(LOGGERS)}")
    resume = _get(cfg, "resume")
    if resume not in (None, "auto") and not Path(str(resume)).is_file():
        raise ConfigError(
            f"resume={resume!r}: no such checkpoint file (use resume=auto or a path to last.pt)"
        )


def _check_pretrained(pretrained: Any, spec: Any) -> None:
    """``model.pretrained``: null, an existing file, or a published weight name of the model."""
    if pretrained in (None, ""):
        return
    text = str(pretrained)
    if Path(text).expanduser().is_file():
        return
    if text in spec.weights:
        return  # a published name: the file is looked up in the torch hub cache when the model is built
    known = f"; published names for {spec.name}: {_choices(sorted(spec.weights))}" if spec.weights else ""
    what = "is a folder, not a weights file" if Path(text).expanduser().is_dir() else "no such file"
    raise ConfigError(f"model.pretrained={text}: {what}{known}")


def check_output_folder(option: str, folder: Any) -> Path:
    """``folder`` can be created and written (checked before any work); :class:`ConfigError` if not."""
    from softpool_video.cli import UsageError, writable_folder

    try:
        return writable_folder(option, str(folder))
    except UsageError as error:
        raise ConfigError(str(error)) from None


#: Keys of the data section that only the loader reads: checked the same way for training and
#: evaluation (``+data_overrides.batch_size=...``).
def check_loader_settings(data_cfg: Mapping[str, Any], prefix: str = "data") -> None:
    """``batch_size`` >= 1, ``num_workers`` >= 0, the loader switches booleans; :class:`ConfigError`."""
    check = _Checks({prefix: data_cfg})
    check.integer(f"{prefix}.batch_size", 1)
    check.integer(f"{prefix}.val_batch_size", 1)
    check.integer(f"{prefix}.num_workers", 0)
    check.boolean(f"{prefix}.persistent_workers")
    check.boolean(f"{prefix}.pin_memory")
    check.integer(f"{prefix}.num_classes", 2)


# ---------------------------------------------------------------------------------------------
# Model and data settings that must agree


#: Data keys that follow the model's clip shape (``reconcile_clip_shape``).
CLIP_SHAPE_KEYS = ("num_frames", "train_crop_size", "test_crop_size", "alpha")


def reconcile_clip_shape(cfg: DictConfig, model_cfg: Mapping[str, Any] | None = None) -> list[str]:
    """Make ``cfg.data`` and the model agree on frames, crop size and SlowFast alpha; returns one note
    per value derived (to be logged). Raises :class:`ConfigError` when two values set both conflict.

    The model's clip shape (``model.num_frames``, ``model.crop_size``, ``model.alpha``, default: the
    registry's) is what the network was built for; a data value left ``null`` (or, as the data
    configs say, ``${oc.select:model.num_frames,16}``) takes it:
    ``data.num_frames``, ``data.train_crop_size``, ``data.test_crop_size`` and ``data.alpha``. A data
    value that is set must equal the model's (``data.test_crop_size`` may differ: testing at a larger
    crop is common). ``model_cfg`` (the checkpoint's, for evaluation) replaces ``cfg.model``.
    """
    from softpool_video.models.registry import get_model_spec

    model = model_cfg if model_cfg is not None else cfg.model
    name = str(model.get("name"))
    spec = get_model_spec(name)
    data = cfg.data
    notes: list[str] = []
    # The data configs say ``num_frames: ${oc.select:model.num_frames,16}``: "the model's". Such a
    # value is derived here (and logged); a number set by the user must agree with the model.
    with open_dict(data):
        for key in CLIP_SHAPE_KEYS:
            if key in data and OmegaConf.is_interpolation(data, key):
                data[key] = None

    def agree(model_key: str, data_key: str, default: Any, what: str) -> int:
        model_value = model.get(model_key)
        data_value = data.get(data_key)
        if model_value is None and data_value is None:
            model_value = default
        if data_value is None:
            with open_dict(data):
                data[data_key] = int(model_value)
            notes.append(
                f"data.{data_key}={int(model_value)} (from the model: {name} takes {what} {model_value})"
            )
            return int(model_value)
        if model_value is None:
            if model_cfg is None:
                with open_dict(cfg):
                    cfg.model[model_key] = int(data_value)
                notes.append(f"model.{model_key}={int(data_value)} (from data.{data_key})")
            return int(data_value)
        if int(model_value) != int(data_value):
            raise ConfigError(
                f"data.{data_key}={data_value} but model.{model_key}={model_value} ({name}): they must "
                f"agree; set model.{model_key}={data_value} to build the model for it, or leave "
                f"data.{data_key} unset (null) to take the model's"
            )
        return int(model_value)

    frames = agree("num_frames", "num_frames", spec.num_frames, "clips of")
    crop = agree("crop_size", "train_crop_size", spec.crop_size, "crops of")
    if data.get("test_crop_size") is None:
        with open_dict(data):
            data.test_crop_size = crop
        notes.append(f"data.test_crop_size={crop} (from the model's crop size)")

    model_alpha = model.get("alpha")
    if model_alpha is None:
        model_alpha = spec.alpha
    data_alpha = data.get("alpha")
    if model_alpha is None and data_alpha is not None:
        raise ConfigError(
            f"data.alpha={data_alpha} makes [slow, fast] clips but model {name} takes one tensor: "
            "set data.alpha=null"
        )
    if model_alpha is not None:
        if data_alpha is None:
            with open_dict(data):
                data.alpha = int(model_alpha)
            notes.append(f"data.alpha={int(model_alpha)} (from the model: {name} has alpha={model_alpha})")
        elif int(data_alpha) != int(model_alpha):
            raise ConfigError(
                f"data.alpha={data_alpha} but model {name} has alpha={model_alpha}; they must agree "
                "(data.alpha=null takes the model's)"
            )
        if frames % int(model_alpha):
            raise ConfigError(
                f"data.num_frames={frames} is not a multiple of the SlowFast alpha={model_alpha} of {name}: "
                f"the slow pathway takes every {model_alpha}th frame; use a multiple of {model_alpha}"
            )
    return notes


# ---------------------------------------------------------------------------------------------
# Data: where it is, whether it may be generated


def _launch_directory() -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import get_original_cwd

        if HydraConfig.initialized():
            return Path(get_original_cwd())
    except (ImportError, ValueError):
        pass
    return Path.cwd()


def data_root(data_cfg: Mapping[str, Any]) -> Path | None:
    """``data.root`` as an absolute path (relative = to the launch directory), ``None`` if unset."""
    root = data_cfg.get("root")
    if root in (None, "", "???"):
        return None
    path = Path(str(root)).expanduser()
    return path if path.is_absolute() else _launch_directory() / path


def _missing_root_state(root: Path) -> str:
    """What is wrong with a ``data.root`` that holds no dataset, for the error line."""
    if root.is_file():
        return "is a file, not a dataset folder"
    return "is an empty folder" if root.is_dir() else "does not exist"


def synthetic_generation(data_cfg: Mapping[str, Any], purpose: str = "train") -> str | None:
    """Whether the dataset at ``data.root`` must be generated first: the reason to log, or ``None``.

    The synthetic dataset is generated only where the user asked for it: ``data=synthetic`` at its
    default root (``data/synthetic`` under the launch directory), or anywhere with an explicit
    ``data.generate=true``. Anything else that is missing is an error (a mistyped ``data.root`` must
    never invent a dataset), and evaluation (``purpose="eval"``) never generates.
    """
    from softpool_video.data.synthetic import INFO_FILE

    root = data_root(data_cfg)
    if root is None:
        return None  # DataConfig reports the unset root
    generate = data_cfg.get("generate")
    if generate is None and data_cfg.get("generate_if_missing") is False:
        generate = False  # the 0.1 name of the switch
    synthetic = data_cfg.get("synthetic") is not None and str(data_cfg.get("name")) == "synthetic"
    if (root / INFO_FILE).is_file() and not (generate and purpose != "eval"):
        return None
    if root.is_dir() and any(root.iterdir()) and not (root / INFO_FILE).is_file():
        if generate and purpose != "eval":
            raise ConfigError(
                f"data.generate=true but data.root={data_cfg.get('root')} ({root}) already holds other "
                "files; the synthetic dataset is only generated into an empty or missing folder"
            )
        return None  # a real dataset: the annotation parser checks it
    if (root / INFO_FILE).is_file():
        return "data.generate=true"  # ensure: same parameters, or an error naming the difference
    if purpose == "eval":
        state = _missing_root_state(root)
        raise ConfigError(
            f"data.root={data_cfg.get('root')} ({root}) {state}; evaluation never generates data: "
            "point data.root (or +data_overrides.root) at the dataset the checkpoint should be tested on"
        )
    if generate is True and data_cfg.get("synthetic") is None:
        raise ConfigError(
            "data.generate=true needs the synthetic dataset's settings (data.synthetic); use data=synthetic"
        )
    reason = _data_layer_reason(data_cfg, generate)
    if reason is not None:
        return reason
    hint = (
        "; pass data.generate=true to generate the synthetic dataset there"
        if synthetic
        else " (see datasets/README.md to download and prepare it)"
    )
    state = _missing_root_state(root)
    raise ConfigError(f"data.root={data_cfg.get('root')} ({root}) {state}{hint}")


def _data_layer_reason(data_cfg: Mapping[str, Any], generate: bool | None) -> str | None:
    """The data package's rule (``synthetic_generation_reason``): one definition of "asked for"."""
    from softpool_video.data.config import DataConfig, synthetic_generation_reason

    plain = data_config_for_build(data_cfg)
    plain["generate"] = generate
    try:
        return synthetic_generation_reason(DataConfig.from_config(plain))
    except (ValueError, TypeError) as error:
        raise ConfigError(f"data: {' '.join(str(error).split())}") from None


def generate_synthetic(data_cfg: Mapping[str, Any], reason: str, progress: bool = False) -> Path:
    """Generate (or check) the synthetic dataset at ``data.root`` with ``data.synthetic``; logs one line."""
    import logging

    from softpool_video.data.synthetic import ensure_synthetic_dataset

    root = data_root(data_cfg)
    options = dict(data_cfg.get("synthetic") or {})
    count = int(options.get("num_classes", 8)) * int(options.get("videos_per_class", 50))
    logging.getLogger("softpool_video").info(
        "data: generating the synthetic motion dataset (%d videos) in %s (%s)", count, root, reason
    )
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        return ensure_synthetic_dataset(root, **options, workers=workers, progress=progress)
    except (FileExistsError, TypeError, ValueError) as error:
        raise ConfigError(f"data.synthetic: {error}") from None


_GENERATION_KEYS = ("generate", "generate_if_missing")


def data_config_for_build(data_cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The data section as ``build_dataset`` takes it: plain, with ``generate=false`` (the decision is
    :func:`synthetic_generation`'s, made before, and the generation done by :func:`generate_synthetic`);
    the 0.1 key ``generate_if_missing`` is dropped."""
    plain = to_plain_dict(data_cfg) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
    for key in _GENERATION_KEYS:
        plain.pop(key, None)
    plain["generate"] = False
    return plain


def build_split(data_cfg: Any, split: str) -> Any:
    """``softpool_video.data.build_dataset(data_cfg, split)`` (never generating data), with its
    configuration problems (bad key, missing root or list file, no videos left) as :class:`ConfigError`."""
    from softpool_video.data import build_dataset

    try:
        return build_dataset(data_config_for_build(data_cfg), split)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as error:
        raise ConfigError(f"data (split={split}): {' '.join(str(error).split())}") from None


def build_model_from_config(
    cfg: DictConfig | Mapping[str, Any], num_classes: int, pretrained: bool = True
) -> torch.nn.Module:
    """The run's model from its ``model`` (name, clip size, ``kwargs``) and ``pooling`` sections.

    ``pretrained=False`` skips ``model.pretrained`` (used when the weights come from a checkpoint).
    Raises :class:`ConfigError` naming the key for options the builder does not take, and for a
    ``model.pretrained`` file that is not a checkpoint or does not fit the model.
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
    weights = model_cfg.get("pretrained")
    try:
        return build(model_cfg, num_classes, pooling_cfg)
    except MissingDependencyError as error:  # an optional package this installation lacks
        raise ConfigError(f"model.name={name!r}: {' '.join(str(error).split())}") from None
    except TypeError as error:  # an option the builder does not take: model.kwargs.<key>
        match = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        key = f"model.kwargs.{match.group(1)}" if match else "model.kwargs"
        raise ConfigError(f"{key}: {name} does not take this option ({error})") from None
    except (ValueError, FileNotFoundError, KeyError) as error:
        message = " ".join(str(error).split())
        if weights and (str(weights) in message or "load_pretrained" in message or "checkpoint" in message):
            if len(message) > 400:
                message = message[:400] + " ..."
            raise ConfigError(f"model.pretrained={weights}: {message}") from None
        raise ConfigError(f"model ({name}): {message}") from None
