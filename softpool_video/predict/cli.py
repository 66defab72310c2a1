"""``softpool-predict VIDEO [VIDEO|DIR ...] checkpoint=PATH [key=value ...]``: classify videos.

    softpool-predict clip.mp4 checkpoint=runs/r2plus1d_tiny-soft/<run>/checkpoints/best.pt
    softpool-predict videos/ more.mp4 checkpoint=best.pt topk=3 output=preds.json   # or .csv
    softpool-predict clip.mp4 checkpoint=best.pt num_clips=3 num_crops=1 device=cpu
    softpool-predict long.mp4 checkpoint=best.pt mode=timeline window=2 stride=1 plot=long.png
    softpool-predict clip.mp4 checkpoint=best.pt out_video=clip_labelled.mp4   # labels drawn on the video
    softpool-predict clip.mp4 model=r3d_18 weights=r3d_18-b3b3357e.pth labels=kinetics400.txt pooling=soft

Prints, per video, the top-k labels with their probabilities; folders are searched recursively
for videos and show a progress bar. Unreadable files are reported and skipped. Exit codes: 0 when
at least one video was classified, 1 when none could be (or the checkpoint is unreadable, or the
output file cannot be written), 2 for a bad argument (the message names it), 130 when stopped
with Ctrl-C (what was done is still reported and written). ``softpool-predict --help`` lists the
options.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from softpool_video import cli
from softpool_video.cli import Option, UsageError
from softpool_video.constants import DECODERS, POOLING_CHOICES

__all__ = ["COMMAND", "OPTIONS", "main", "parse_args", "usage"]

PROG = "softpool-predict"
EXIT_OK, EXIT_NOTHING_CLASSIFIED, EXIT_BAD_ARGUMENT, EXIT_INTERRUPTED = (
    cli.EXIT_OK,
    cli.EXIT_FAILURE,
    cli.EXIT_USAGE,
    cli.EXIT_INTERRUPTED,
)

#: Kept for callers of 0.1: bad arguments raise the grammar's UsageError.
ArgumentError = UsageError


def _workers(name: str, text: str) -> Any:
    return "auto" if text.strip() == "auto" else cli.integer(0)(name, text)


def _decoder(name: str, text: str) -> str:
    from softpool_video.data.decoders import available_backends

    value = cli.choice(DECODERS)(name, text)
    if value not in available_backends():
        raise UsageError(
            f"{name}={value}: that decoder is not installed here; "
            f"installed: {', '.join(available_backends())}"
        )
    return value


def _num_crops(name: str, text: str) -> int:
    return int(cli.choice(("1", "3"))(name, text))


def _model_name(name: str, text: str) -> str:
    from softpool_video.models import list_models

    return cli.choice(list_models())(name, text)


def _rgb(name: str, text: str) -> list[float]:
    values = cli.listing(cli.number())(name, text)
    if len(values) != 3:
        raise UsageError(f"{name} must be three numbers R,G,B like {name}=0.45,0.45,0.45, got {text!r}")
    return values


TIMELINE = ("mode", ("timeline",))

OPTIONS: dict[str, Option] = {
    "checkpoint": Option(None, cli.path(), "a .pt written by softpool-train, or its run folder"),
    "model": Option(None, _model_name, "instead of checkpoint=: a registered model (with weights= labels=)"),
    "weights": Option(None, cli.path(), "its weights: a pytorchvideo/torchvision/PySlowFast/mmaction2 file"),
    "labels": Option(None, cli.path(), "its class names: one per line, or a JSON list/map"),
    "pooling": Option(
        "original",
        cli.choice(POOLING_CHOICES),
        "model=: swap its pools for soft, max or avg after loading (original: keep)",
    ),
    "num_frames": Option(None, cli.integer(1, optional=True), "model=: frames per clip [the model's recipe]"),
    "sampling_rate": Option(None, cli.integer(1, optional=True), "model=: frame step [the model's recipe]"),
    "crop_size": Option(None, cli.integer(8, optional=True), "model=: crop side in pixels [the recipe's]"),
    "mean": Option(None, _rgb, "model=: normalisation mean R,G,B [the recipe's]"),
    "std": Option(None, _rgb, "model=: normalisation std R,G,B [the recipe's]"),
    "topk": Option(5, cli.integer(1), "labels listed per video (at most the number of classes)"),
    "output": Option(None, cli.path((".json", ".csv")), "also write the results to a .json or .csv file"),
    "mode": Option(
        "predict",
        cli.choice(("predict", "timeline")),
        "predict: one label set per video; timeline: one per segment",
    ),
    "window": Option(2.0, cli.number(positive=True), "seconds of video the model sees per segment", TIMELINE),
    "stride": Option(
        None, cli.number(positive=True, optional=True), "segment length in seconds [window]", TIMELINE
    ),
    "plot": Option(
        None,
        cli.path((".png",)),
        "write a PNG plot (one per video: NAME_<video>.png when there are several)",
        TIMELINE,
    ),
    "num_clips": Option(
        None,
        cli.integer(1, optional=True),
        "clips per video [the checkpoint's test setting; timeline: 1 per window]",
    ),
    "num_crops": Option(None, _num_crops, "crops per clip, 1 or 3 [the checkpoint's]"),
    "out_video": Option(
        None,
        cli.path((".mp4", ".mkv", ".mov", ".avi", ".webm")),
        "write the video with the prediction drawn on it (NAME_<video>.mp4 for several)",
    ),
    "device": Option("auto", cli.device(), "auto (the GPU when present), cpu, cuda or cuda:N"),
    "batch_size": Option(None, cli.integer(1, optional=True), "views per forward pass [the checkpoint's]"),
    "workers": Option("auto", _workers, "decoding processes: N, or auto (0 on CPU, up to 4 with a GPU)"),
    "decoder": Option(None, _decoder, f"video decoder: {', '.join(DECODERS)} [the checkpoint's]"),
    "progress": Option(
        True, cli.boolean(), "progress bars: over the videos, and over the segments of a timeline"
    ),
}

COMMAND = cli.Command(
    prog=PROG,
    summary=(
        "Classify videos with a softpool-train checkpoint, or a registered model with foreign weights\n"
        "(model= weights= labels=): multi-view inference (clips x crops), top-k\n"
        "labels with probabilities per video, or per segment of long videos with mode=timeline.\n"
        "Folders are searched recursively for videos. Exit status 0 when some video was classified,\n"
        "1 when none could be (or the checkpoint or the output is unusable), 2 for a bad argument."
    ),
    options=OPTIONS,
    positionals=cli.Positionals("VIDEO", minimum=0),
    usage_line=(
        "VIDEO [VIDEO|DIR ...] (checkpoint=PATH | model=NAME weights=PATH labels=FILE) [key=value ...]"
    ),
)


def usage() -> str:
    return COMMAND.usage()


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """``["a.mp4", "dir/", "checkpoint=x.pt", "topk=3"]`` -> ``(inputs, options)`` with defaults filled in.

    An argument with ``=`` is an option unless its key is unknown and it names an existing file
    (a video called ``a=b.mp4``).

    Raises:
        UsageError: naming the argument that is unknown, malformed, out of range, repeated or missing.
    """
    return _checked(COMMAND.parse(argv))


FOREIGN_ONLY = ("pooling", "num_frames", "sampling_rate", "crop_size", "mean", "std")


def _checked(arguments: cli.Arguments) -> tuple[list[str], dict[str, Any]]:
    options = dict(arguments.values)
    foreign = [key for key in ("model", "weights", "labels") if options[key] is not None]
    if options["checkpoint"] and foreign:
        raise UsageError(f"checkpoint= and {'='.join(foreign)}= exclude each other: give one or the other")
    if foreign:
        missing = [key for key in ("model", "weights", "labels") if options[key] is None]
        if missing:
            raise UsageError(
                f"{', '.join(f'{key}=' for key in missing)} missing: foreign weights need model=NAME "
                "weights=PATH labels=FILE"
            )
        for key in ("weights", "labels"):
            if not Path(options[key]).is_file():
                raise UsageError(f"{key}={options[key]}: no such file")
    else:
        given = [key for key in FOREIGN_ONLY if key in arguments.given]
        if given:
            raise UsageError(f"{given[0]}= only applies to model=NAME weights=PATH labels=FILE")
        if not options["checkpoint"]:
            raise UsageError(
                "checkpoint=PATH is required (a last.pt or best.pt written by softpool-train), "
                "or model=NAME weights=PATH labels=FILE"
            )
        from softpool_video.predict.predictor import resolve_checkpoint

        checkpoint = resolve_checkpoint(options["checkpoint"])
        if checkpoint.is_dir():
            raise UsageError(
                f"checkpoint={options['checkpoint']}: a folder without checkpoints/best.pt or "
                "checkpoints/last.pt"
            )
        if not checkpoint.is_file():
            raise UsageError(f"checkpoint={options['checkpoint']}: no such file")
    if not arguments.positionals:
        raise UsageError("no VIDEO or DIR given")
    # Named inputs must exist and outputs must have a place to go before the model is loaded: a typo
    # is a bad argument (exit 2), not a run that classified nothing.
    for given in arguments.positionals:
        if not os.path.exists(given):
            raise UsageError(f"{given}: no such video file or folder")
    for key in ("output", "plot", "out_video"):
        if options.get(key) is not None:
            target = Path(options[key])
            if target.is_dir():
                raise UsageError(f"{key}={options[key]}: is a folder; give a file name")
            try:
                cli.writable_folder(key, target.parent)
            except UsageError as error:  # say which file cannot be written, then why
                reason = str(error).split(": ", 1)[-1]
                raise UsageError(f"{key}={options[key]}: cannot write it: {target.parent} {reason}") from None
    return list(arguments.positionals), options


def _workers_for(option: Any, device: str) -> int:
    if option != "auto":
        return int(option)
    from softpool_video.predict.predictor import resolve_device

    if resolve_device(device).type != "cuda":
        return 0  # on the CPU the model needs the cores more than the decoder does
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _plot_paths(plot: str, videos: Sequence[Path]) -> list[Path]:
    """One file per video: ``plot`` itself for a single video, else ``<plot stem>_<video stem><suffix>``
    (used for ``plot=`` and ``out_video=``)."""
    base = Path(plot)
    if len(videos) == 1:
        return [base]
    paths, used = [], set()
    for video in videos:
        name = f"{base.stem}_{video.stem}"
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name}_{n}"
        used.add(candidate)
        paths.append(base.with_name(candidate + base.suffix))
    return paths


def _error(message: str) -> None:
    cli.print_error(PROG, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``softpool-predict`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return cli.run(COMMAND, lambda arguments: _predict(*_checked(arguments)), argv)


def _predict(inputs: list[str], options: dict[str, Any]) -> int:
    from tqdm import tqdm

    from softpool_video.models.loading import CheckpointError
    from softpool_video.predict.predictor import Predictor, find_videos
    from softpool_video.predict.report import format_prediction, format_timeline

    videos, notes = find_videos(inputs)
    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    if not videos:
        _error("nothing to classify: no video found in " + ", ".join(inputs))
        return EXIT_NOTHING_CLASSIFIED

    source = "checkpoint" if options["checkpoint"] else "weights"
    foreign = {}
    if options["model"] is not None:
        foreign = {key: options[key] for key in ("model", "weights", "labels", "pooling")}
        foreign.update({key: options[key] for key in FOREIGN_ONLY[1:] if options[key] is not None})
    try:
        predictor = Predictor(
            options["checkpoint"],
            **foreign,
            device=options["device"],
            num_clips=options["num_clips"],
            num_crops=options["num_crops"],
            topk=options["topk"],
            batch_size=options["batch_size"],
            num_workers=_workers_for(options["workers"], options["device"]),
            decoder=options["decoder"],
        )
    except (
        CheckpointError,
        ValueError,
    ) as error:  # ValueError: the checkpoint names a setting this version lacks
        message = cli.error_summary(error)
        if foreign and message.startswith(("labels=", "weights=")):
            _error(message)
        else:
            _error(f"{source}={options[source]}: {message}")
        return EXIT_NOTHING_CLASSIFIED
    timeline = options["mode"] == "timeline"
    print(f"{PROG}: {predictor!r}", file=sys.stderr, flush=True)

    show_bar = options["progress"] and len(videos) > 1
    results: list[Any] = []
    interrupted = False
    try:
        if timeline:
            bar = tqdm(videos, desc="timelines", unit="video", disable=not show_bar, dynamic_ncols=True)
            for video in bar:
                result = predictor.timeline(
                    video, window=options["window"], stride=options["stride"], progress=options["progress"]
                )
                results.append(result)
                tqdm.write(format_timeline(result) + "\n")
        else:
            for result in predictor.iter_predictions(videos, progress=show_bar):
                results.append(result)
                tqdm.write(format_prediction(result) + "\n")
    except KeyboardInterrupt:  # keep what is done: report and write it
        interrupted = True
        print(f"{PROG}: interrupted after {len(results)} of {len(videos)} video(s)", file=sys.stderr)

    status = _write_files(options, predictor, results, videos)
    classified = [r for r in results if r.ok]
    unreadable = [r for r in results if not r.ok]
    if unreadable:
        print(f"{PROG}: {len(unreadable)} of {len(results)} video(s) could not be read:", file=sys.stderr)
        for result in unreadable:
            print(f"  {result.video}: {result.error}", file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    if not classified:
        _error(f"none of the {len(results)} video(s) could be classified")
        return EXIT_NOTHING_CLASSIFIED
    print(f"{PROG}: classified {len(classified)} of {len(results)} video(s)", file=sys.stderr)
    return status


def _write_files(options: dict[str, Any], predictor: Any, results: list[Any], videos: list[Path]) -> int:
    """The ``output=`` file and the ``plot=`` PNGs; EXIT_NOTHING_CLASSIFIED if one cannot be written."""
    from softpool_video.predict.report import write_output

    topk = min(predictor.topk, predictor.num_classes)
    settings = {**predictor.settings, "mode": options["mode"], "topk": topk}
    if options["mode"] == "timeline":
        settings.update(window=options["window"], stride=options["stride"] or options["window"])
    status = EXIT_OK
    try:
        if options["output"] and results:  # written even when nothing was classified: it lists the errors
            path = write_output(options["output"], results, predictor.class_names, settings, topk)
            print(f"{PROG}: wrote {path}", file=sys.stderr)
    except OSError as error:
        _error(f"output={options['output']}: cannot write it: {error}")
        status = EXIT_NOTHING_CLASSIFIED
    if options["out_video"]:
        status = max(status, _write_videos(options, results, videos))
    if options["mode"] == "timeline" and options["plot"]:
        for result, path in zip(results, _plot_paths(options["plot"], videos)):
            if not result.ok:
                continue
            try:
                result.plot(path)
            except OSError as error:
                _error(f"plot={options['plot']}: cannot write {path}: {error}")
                status = EXIT_NOTHING_CLASSIFIED
            else:
                print(f"{PROG}: wrote {path}", file=sys.stderr)
    return status


def _write_videos(options: dict[str, Any], results: list[Any], videos: list[Path]) -> int:
    """The ``out_video=`` files: each classified video with its prediction drawn on it."""
    from softpool_video.data.decoders import VideoDecodeError
    from softpool_video.predict.annotate import annotate_prediction, annotate_timeline

    status = EXIT_OK
    for result, path in zip(results, _plot_paths(options["out_video"], videos)):
        if not result.ok:
            continue
        try:
            if options["mode"] == "timeline":
                annotate_timeline(result.video, result, path, progress=options["progress"])
            else:
                annotate_prediction(result.video, result.topk, path, progress=options["progress"])
        except (OSError, VideoDecodeError, ValueError) as error:  # ValueError: PyAV's encoder errors
            _error(f"out_video={options['out_video']}: cannot write {path}: {cli.error_summary(error)}")
            status = EXIT_NOTHING_CLASSIFIED
        else:
            print(f"{PROG}: wrote {path}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
