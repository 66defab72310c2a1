"""`softpool-visualize VIDEO [key=value ...]`: see what max, avg and SoftPool keep of a video.

    softpool-visualize clip.mp4                                # kernel=2,2,2 levels=3, all methods
    softpool-visualize clip.mp4 kernel=1,2,2 levels=2 methods=[soft,max] output=out/clip
    softpool-visualize clip.mp4 start=2 end=6 max_side=0       # a time range at full resolution
    softpool-visualize clip.mp4 mode=features model=slowfast_r50 layer=blocks.0.pathway0_stem.pool

Arguments are Hydra-style ``key=value`` overrides (values parsed as YAML: ``[a,b]`` is a list,
``null`` is None); ``softpool-visualize --help`` lists them. Exit codes: 0 done, 1 the video or
checkpoint could not be read, 2 a bad argument.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

__all__ = ["main", "parse_args"]

PROG = "softpool-visualize"


class ArgumentError(ValueError):
    """A command-line argument is malformed; the message names it."""


def _int(name: str, minimum: int, allow_none: bool = False) -> Callable[[Any], Any]:
    def convert(value):
        if allow_none and value in (None, 0):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            accepted = f"an int >= {minimum}" + (" or null" if allow_none else "")
            raise ArgumentError(f"{name} must be {accepted}, got {value!r}")
        return value

    return convert


def _float(name: str, positive: bool = False) -> Callable[[Any], Any]:
    def convert(value):
        if value is None and not positive:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or (positive and not value > 0):
            raise ArgumentError(f"{name} must be a {'positive ' if positive else ''}number, got {value!r}")
        return float(value)

    return convert


def _kernel(value):
    """``2``, ``2,2,2`` or ``[1,2,2]`` -> (T, H, W)."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    try:
        values = tuple(int(str(v).strip()) for v in items)
    except ValueError:
        values = ()
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or any(v < 1 for v in values):
        raise ArgumentError(
            f"kernel must be one positive int or three (T,H,W) like kernel=2,2,2, got {value!r}"
        )
    return values


def _methods(value):
    from softpool_video.visualize.downsample import POOLING_METHODS

    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or any(n not in POOLING_METHODS for n in names):
        raise ArgumentError(
            f"methods must be a list from {list(POOLING_METHODS)} like methods=[soft,max], got {value!r}"
        )
    return names


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def convert(value):
        if value not in choices:
            raise ArgumentError(f"{name} must be one of {list(choices)}, got {value!r}")
        return value

    return convert


def _text(name: str) -> Callable[[Any], Any]:
    def convert(value):
        if value is None:
            return None
        if isinstance(value, bool | list | dict):
            raise ArgumentError(f"{name} must be a string, got {value!r}")
        return str(value)

    return convert


def _flag(name: str) -> Callable[[Any], Any]:
    def convert(value):
        if not isinstance(value, bool):
            raise ArgumentError(f"{name} must be true or false, got {value!r}")
        return value

    return convert


@dataclass(frozen=True)
class Option:
    default: Any
    convert: Callable[[Any], Any]
    help: str
    features_only: bool = False
    pool_only: bool = False


OPTIONS: dict[str, Option] = {
    "video": Option(None, _text("video"), "the video file (or give it first, without video=)"),
    "mode": Option(
        "pool", _choice("mode", ("pool", "features")), "pool: downsample the frames; features: a model's pool"
    ),
    "output": Option(None, _text("output"), "output folder [outputs/visualize/<video name>]"),
    "start": Option(None, _float("start"), "first second to decode [beginning]"),
    "end": Option(None, _float("end"), "second to stop decoding at [end of the video]", pool_only=True),
    "max_side": Option(
        320,
        _int("max_side", 0, allow_none=True),
        "shrink frames so the longer side fits; 0: keep",
        pool_only=True,
    ),
    "max_frames": Option(
        None, _int("max_frames", 1, allow_none=True), "decode at most this many frames", pool_only=True
    ),
    "kernel": Option((2, 2, 2), _kernel, "pooling window = stride, T,H,W or one int", pool_only=True),
    "levels": Option(3, _int("levels", 1), "apply each pooling 1..levels times", pool_only=True),
    "methods": Option(
        ["soft", "max", "avg"], _methods, "pooling methods, shown as max | avg | soft", pool_only=True
    ),
    "temperature": Option(
        1.0, _float("temperature", positive=True), "SoftPool temperature (pool mode: on frames in [0, 1])"
    ),
    "reference": Option(
        "box", _choice("reference", ("box", "triangle")), "anti-aliased reference filter", pool_only=True
    ),
    "contact_frames": Option(
        4, _int("contact_frames", 1), "frames per row of the contact sheet", pool_only=True
    ),
    "gif": Option(True, _flag("gif"), "also write GIFs of the side-by-side videos"),
    "gif_width": Option(480, _int("gif_width", 16), "width of the GIFs in pixels"),
    "model": Option("slowfast_r50", _text("model"), "registry model name (mode=features)", True),
    "checkpoint": Option(
        None, _text("checkpoint"), "a softpool-train checkpoint instead of model= (mode=features)", True
    ),
    "pretrained": Option(
        None, _text("pretrained"), "weights for model=: a file or a published name (mode=features)", True
    ),
    "layer": Option(
        None, _text("layer"), "pooling module name [the model's first pool] (mode=features)", True
    ),
    "num_frames": Option(
        None, _int("num_frames", 1, allow_none=True), "clip frames [the model's] (mode=features)", True
    ),
    "crop_size": Option(
        None, _int("crop_size", 1, allow_none=True), "clip crop side [the model's] (mode=features)", True
    ),
}


def usage() -> str:
    lines = [
        f"usage: {PROG} VIDEO [key=value ...]",
        "",
        "Pool a video 1..levels times over time, height and width with max, avg and SoftPool and write",
        "a labelled side-by-side MP4/GIF per level, a PNG contact sheet and the information-retention",
        "table (PSNR/SSIM, printed and retention.csv). mode=features shows a model's pooling layer instead.",
        "",
        "options [default]:",
    ]
    for name, option in OPTIONS.items():
        default = option.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        elif isinstance(default, list):
            default = "[" + ",".join(default) + "]"
        shown = "" if "[" in option.help or default is None else f" [{default}]"
        lines.append(f"  {name + '=':<16}{option.help}{shown}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``["clip.mp4", "levels=2", ...]`` -> option name -> converted value (defaults filled in).

    Raises:
        ArgumentError: naming the argument that is unknown, malformed or out of range.
    """
    values: dict[str, Any] = {}
    for arg in argv:
        if "=" not in arg:
            if "video" in values:
                raise ArgumentError(
                    f"more than one video given: {values['video']!r} and {arg!r} (one per run)"
                )
            values["video"] = arg
            continue
        key = arg.split("=", 1)[0].strip().lstrip("+")
        if key not in OPTIONS:
            raise ArgumentError(f"unknown option {key!r} in {arg!r}; known: {', '.join(OPTIONS)}")
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([arg.lstrip("+")]))
        except Exception as error:  # omegaconf raises several YAML/grammar error types
            raise ArgumentError(f"cannot parse {arg!r}: {str(error).splitlines()[0]}") from None
        values[key] = parsed[key]
    options = {}
    for name, option in OPTIONS.items():
        options[name] = option.convert(values[name]) if name in values else option.default
    if options["video"] is None:
        raise ArgumentError("no VIDEO given")
    other_mode = "pool_only" if options["mode"] == "features" else "features_only"
    misplaced = [name for name in values if getattr(OPTIONS[name], other_mode)]
    if misplaced:
        wanted = "mode=pool (the default)" if options["mode"] == "features" else "mode=features"
        raise ArgumentError(f"{', '.join(misplaced)} only apply to {wanted}")
    return options


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    try:
        options = parse_args(argv)
    except ArgumentError as error:
        print(f"{PROG}: error: {error}\n(see `{PROG} --help`)", file=sys.stderr)
        return 2

    from softpool_video.data.decoders import VideoDecodeError

    unreadable: tuple[type[Exception], ...] = (FileNotFoundError, VideoDecodeError)
    try:
        if options["mode"] == "features":
            from softpool_video.train.checkpoint import CheckpointError
            from softpool_video.visualize.features import describe_features, visualize_features

            unreadable += (CheckpointError,)

            result = visualize_features(
                options["video"],
                model=options["model"],
                checkpoint=options["checkpoint"],
                pretrained=options["pretrained"],
                layer=options["layer"],
                output=options["output"],
                start=options["start"],
                num_frames=options["num_frames"],
                crop_size=options["crop_size"],
                temperature=options["temperature"],
                gif=options["gif"],
                gif_width=options["gif_width"],
            )
            print(describe_features(result))
            return 0

        from softpool_video.visualize.pipeline import describe, visualize_video

        result = visualize_video(
            options["video"],
            kernel=options["kernel"],
            levels=options["levels"],
            methods=options["methods"],
            output=options["output"],
            start=options["start"],
            end=options["end"],
            max_side=options["max_side"],
            max_frames=options["max_frames"],
            temperature=options["temperature"],
            reference=options["reference"],
            contact_frames=options["contact_frames"],
            gif=options["gif"],
            gif_width=options["gif_width"],
        )
    except unreadable as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # an argument the decoder or pooling rejected (named in the message)
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(describe(result, options["reference"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
