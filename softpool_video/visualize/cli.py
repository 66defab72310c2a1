"""`softpool-visualize VIDEO [key=value ...]`: see what max, avg and SoftPool keep of a video.

    softpool-visualize clip.mp4                                # kernel=2,2,2 levels=3, all methods
    softpool-visualize clip.mp4 kernel=1,2,2 levels=2 methods=[soft,max] output=out/clip
    softpool-visualize clip.mp4 start=2 end=6 max_side=0       # a time range at full resolution
    softpool-visualize clip.mp4 mode=features model=slowfast_r50 layer=blocks.0.pathway0_stem.pool
    softpool-visualize clip.mp4 mode=gradcam checkpoint=best.pt target=MoveLeft
    softpool-visualize clip.mp4 mode=gradcam model=x3d_s weights=X3D_S.pyth labels=kinetics400.json

Arguments follow the grammar of every softpool tool (``softpool_video.cli``): ``key=value``, lists as
``a,b`` or ``[a,b]``, ``null`` for "not set"; ``softpool-visualize --help`` lists them. Exit codes: 0 done,
1 the video or checkpoint could not be read, 2 a bad argument.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from softpool_video import cli
from softpool_video.cli import Option, UsageError
from softpool_video.constants import POOL_KINDS

__all__ = ["COMMAND", "OPTIONS", "main", "parse_args"]

PROG = "softpool-visualize"

#: Kept for callers of 0.1: bad arguments raise the grammar's UsageError.
ArgumentError = UsageError


def _kernel(name: str, value: str) -> tuple[int, int, int]:
    """``2``, ``2,2,2`` or ``[1,2,2]`` -> (T, H, W)."""
    try:
        values = tuple(cli.listing(cli.integer(1))(name, value))
    except UsageError:
        values = ()
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise UsageError(f"{name} must be one positive int or three (T,H,W) like {name}=2,2,2, got {value!r}")
    return values


def _max_side(name: str, value: str) -> int | None:
    side = cli.integer(0, optional=True)(name, value)
    return side or None  # 0: keep the full resolution


def _progress(name: str, value: str) -> bool | str:
    return "auto" if value.strip() == "auto" else cli.boolean()(name, value)


POOL = ("mode", ("pool",))
FEATURES = ("mode", ("features",))
MODELS = ("mode", ("features", "gradcam"))
GRADCAM = ("mode", ("gradcam",))

OPTIONS: dict[str, Option] = {
    "video": Option(None, cli.path(), "the video file (or give it first, without video=)"),
    "mode": Option(
        "pool",
        cli.choice(("pool", "features", "gradcam")),
        "pool: downsample the frames; features: a model's pool; gradcam: class saliency",
    ),
    "output": Option(None, cli.path(), "output folder [outputs/visualize/<video name>]"),
    "start": Option(None, cli.number(minimum=0.0, optional=True), "first second to decode [beginning]"),
    "end": Option(
        None, cli.number(minimum=0.0, optional=True), "second to stop decoding at [end of the video]", POOL
    ),
    "max_side": Option(320, _max_side, "shrink frames so the longer side fits; 0: keep", POOL),
    "max_frames": Option(None, cli.integer(1, optional=True), "decode at most this many frames", POOL),
    "kernel": Option((2, 2, 2), _kernel, "pooling window = stride, T,H,W or one int", POOL),
    "levels": Option(3, cli.integer(1), "apply each pooling 1..levels times", POOL),
    "methods": Option(
        ["soft", "max", "avg"],
        cli.listing(choices=POOL_KINDS),
        "pooling methods, shown as max | avg | soft",
        POOL,
    ),
    "temperature": Option(
        1.0, cli.number(positive=True), "SoftPool temperature (pool mode: on frames in [0, 1])"
    ),
    "reference": Option("box", cli.choice(("box", "triangle")), "anti-aliased reference filter", POOL),
    "contact_frames": Option(4, cli.integer(1), "frames per row of the contact sheet", POOL),
    "gif": Option(False, cli.boolean(), "also write GIFs of the videos (slower: off by default)"),
    "gif_width": Option(480, cli.integer(16), "width of the GIFs in pixels (panels stay >= 200 px)"),
    "progress": Option(
        "auto",
        _progress,
        "progress bars for decoding, pooling and encoding: true, false or auto (on a terminal)",
    ),
    "model": Option("slowfast_r50", cli.text(optional=False), "registry model name", MODELS),
    "checkpoint": Option(None, cli.path(), "a softpool-train checkpoint instead of model=", MODELS),
    "weights": Option(
        None, cli.path(), "model=: a pytorchvideo/torchvision/mmaction2 file (with labels=)", MODELS
    ),
    "labels": Option(None, cli.path(), "the class names of weights=: one per line, or JSON", MODELS),
    "pretrained": Option(None, cli.text(), "weights for model=: a file or a published name", MODELS),
    "layer": Option(None, cli.text(), "pooling module name [the model's first pool]", FEATURES),
    "target": Option(None, cli.text(), "class to explain: a name or an index [the predicted one]", GRADCAM),
    "num_frames": Option(None, cli.integer(1, optional=True), "clip frames [the model's]", MODELS),
    "crop_size": Option(None, cli.integer(1, optional=True), "clip crop side [the model's]", MODELS),
    "sampling_rate": Option(None, cli.integer(1, optional=True), "clip frame step [the model's]", GRADCAM),
}

COMMAND = cli.Command(
    prog=PROG,
    summary=(
        "Pool a video 1..levels times over time, height and width with max, avg and SoftPool and write\n"
        "a labelled side-by-side MP4 (GIF with gif=true) per level, a PNG contact sheet, an x-t slice\n"
        "PNG and the information-retention table (PSNR/SSIM, printed and retention.csv). mode=features\n"
        "shows a model's pooling layer instead, mode=gradcam where the model sees its class (Grad-CAM)."
    ),
    options=OPTIONS,
    positionals=cli.Positionals("VIDEO", minimum=0, maximum=1),
    usage_line="VIDEO [key=value ...]",
)


def usage() -> str:
    return COMMAND.usage()


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``["clip.mp4", "levels=2", ...]`` -> option name -> converted value (defaults filled in).

    Raises:
        UsageError: naming the argument that is unknown, malformed, repeated or out of range.
    """
    return _checked(COMMAND.parse(argv))


def _checked(arguments: cli.Arguments) -> dict[str, Any]:
    options = dict(arguments.values)
    if arguments.positionals:
        if options["video"] is not None:
            raise UsageError(
                f"more than one video given: {options['video']!r} and {arguments.positionals[0]!r} "
                "(one per run)"
            )
        options["video"] = arguments.positionals[0]
    if options["video"] is None:
        raise UsageError(f"no VIDEO given (see {PROG} --help)")
    # Files the user named must exist before any work: a typo is a bad argument (exit 2), not a
    # failure of the run. Whether a file is a readable video is only known once it is opened.
    for key in ("video", "checkpoint", "weights", "labels"):
        given = options.get(key)
        if given is None:
            continue
        if not os.path.exists(given):
            raise UsageError(f"{key}={given}: no such file")
        if os.path.isdir(given):
            raise UsageError(f"{key}={given}: is a folder, not a file")
    if options["output"] is not None:
        cli.writable_folder("output", options["output"])
    return options


def main(argv: list[str] | None = None) -> int:
    """Run ``softpool-visualize`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    return cli.run(COMMAND, lambda arguments: _visualize(_checked(arguments)), argv)


def _show_progress(option: bool | str) -> bool:
    # auto: bars on an interactive terminal only, so logs and error lines stay clean
    return sys.stderr.isatty() if option == "auto" else bool(option)


def _visualize(options: dict[str, Any]) -> int:
    from softpool_video.data.decoders import VideoDecodeError

    unreadable: tuple[type[Exception], ...] = (FileNotFoundError, VideoDecodeError)
    try:
        if options["mode"] == "gradcam":
            from softpool_video.models.loading import CheckpointError
            from softpool_video.visualize.gradcam import describe_gradcam, visualize_gradcam

            unreadable += (CheckpointError,)
            result = visualize_gradcam(
                options["video"],
                model=options["model"],
                checkpoint=options["checkpoint"],
                pretrained=options["pretrained"],
                weights=options["weights"],
                labels=options["labels"],
                target=options["target"],
                output=options["output"],
                start=options["start"],
                num_frames=options["num_frames"],
                crop_size=options["crop_size"],
                sampling_rate=options["sampling_rate"],
            )
            print(describe_gradcam(result))
            return cli.EXIT_OK
        if options["mode"] == "features":
            from softpool_video.models.loading import CheckpointError
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
                weights=options["weights"],
                labels=options["labels"],
            )
            print(describe_features(result))
            return cli.EXIT_OK

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
            progress=_show_progress(options["progress"]),
        )
    except unreadable as error:
        raise cli.Failure(cli.error_summary(error)) from error
    except ValueError as error:  # an argument the decoder or pooling rejected (named in the message)
        raise UsageError(cli.error_summary(error)) from error
    print(describe(result, options["reference"]))
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
