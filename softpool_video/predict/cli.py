"""``softpool-predict VIDEO [VIDEO|DIR ...] checkpoint=PATH [key=value ...]``: classify videos.

    softpool-predict clip.mp4 checkpoint=runs/r2plus1d_tiny-soft/<run>/checkpoints/best.pt
    softpool-predict videos/ more.mp4 checkpoint=best.pt topk=3 output=preds.json   # or .csv
    softpool-predict clip.mp4 checkpoint=best.pt num_clips=3 num_crops=1 device=cpu
    softpool-predict long.mp4 checkpoint=best.pt mode=timeline window=2 stride=1 plot=long.png

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ArgumentError", "OPTIONS", "main", "parse_args", "usage"]

PROG = "softpool-predict"
EXIT_OK, EXIT_NOTHING_CLASSIFIED, EXIT_BAD_ARGUMENT, EXIT_INTERRUPTED = 0, 1, 2, 130


class ArgumentError(ValueError):
    """A command-line argument is unknown, malformed or out of range; the message names it."""


_NULL = ("null", "none", "")


def _int(name: str, minimum: int, optional: bool = False) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if optional and text.lower() in _NULL:
            return None
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            accepted = f"an integer >= {minimum}" + (" or null" if optional else "")
            raise ArgumentError(f"{name} must be {accepted}, got {text!r}")
        return value

    return convert


def _seconds(name: str, optional: bool = False) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if optional and text.lower() in _NULL:
            return None
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise ArgumentError(f"{name} must be a positive number of seconds, got {text!r}")
        return value

    return convert


def _choice(name: str, choices: Sequence[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ArgumentError(f"{name} must be one of {', '.join(choices)}, got {text!r}")
        return text

    return convert


def _path(name: str, suffixes: Sequence[str] = ()) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if text.lower() in _NULL:
            return None
        if suffixes and Path(text).suffix.lower() not in suffixes:
            raise ArgumentError(f"{name}={text}: the file name must end in {' or '.join(suffixes)}")
        return text

    return convert


def _flag(name: str) -> Callable[[str], bool]:
    def convert(text: str) -> bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ArgumentError(f"{name} must be true or false, got {text!r}")

    return convert


def _workers(text: str) -> Any:
    return "auto" if text == "auto" else _int("workers", 0)(text)


def _decoder(text: str) -> str:
    from softpool_video.data.decoders import available_backends

    if text not in available_backends():
        raise ArgumentError(
            f"decoder must be one of the installed decoders {', '.join(available_backends())}, got {text!r}"
        )
    return text


def _device(text: str) -> str:
    from softpool_video.predict.predictor import resolve_device

    try:
        resolve_device(text)
    except ValueError as error:
        raise ArgumentError(str(error)) from None
    return text


@dataclass(frozen=True)
class Option:
    default: Any
    convert: Callable[[str], Any]
    help: str
    timeline_only: bool = False


OPTIONS: dict[str, Option] = {
    "checkpoint": Option(
        None, _path("checkpoint"), "a .pt written by softpool-train, or its run folder (required)"
    ),
    "topk": Option(5, _int("topk", 1), "labels listed per video (at most the number of classes)"),
    "output": Option(
        None, _path("output", (".json", ".csv")), "also write the results to a .json or .csv file"
    ),
    "mode": Option(
        "predict",
        _choice("mode", ("predict", "timeline")),
        "predict: one label set per video; timeline: one per segment",
    ),
    "window": Option(2.0, _seconds("window"), "timeline: seconds of video the model sees per segment", True),
    "stride": Option(
        None, _seconds("stride", optional=True), "timeline: segment length in seconds [window]", True
    ),
    "plot": Option(
        None,
        _path("plot", (".png",)),
        "timeline: write a PNG plot (one per video: NAME_<video>.png when there are several)",
        True,
    ),
    "num_clips": Option(
        None,
        _int("num_clips", 1, optional=True),
        "clips per video [the checkpoint's test setting; timeline: 1 per window]",
    ),
    "num_crops": Option(None, _choice("num_crops", ("1", "3")), "crops per clip, 1 or 3 [the checkpoint's]"),
    "device": Option("auto", _device, "auto (the GPU when present), cpu, cuda or cuda:N"),
    "batch_size": Option(
        None, _int("batch_size", 1, optional=True), "views per forward pass [the checkpoint's]"
    ),
    "workers": Option("auto", _workers, "decoding processes: N, or auto (0 on CPU, up to 4 with a GPU)"),
    "decoder": Option(None, _decoder, "video decoder: pyav, decord or torchcodec [the checkpoint's]"),
    "progress": Option(
        True, _flag("progress"), "progress bars: over the videos, and over the segments of a timeline"
    ),
}


def usage() -> str:
    lines = [
        f"usage: {PROG} VIDEO [VIDEO|DIR ...] checkpoint=PATH [key=value ...]",
        "",
        "Classify videos with a softpool-train checkpoint: multi-view inference (clips x crops), top-k",
        "labels with probabilities per video, or per segment of long videos with mode=timeline.",
        "Folders are searched recursively for videos. Exit codes: 0 some video classified, 1 none",
        "could be (or the checkpoint or output is unusable), 2 a bad argument, 130 Ctrl-C.",
        "",
        "options [default]:",
    ]
    for name, option in OPTIONS.items():
        default = str(option.default).lower() if isinstance(option.default, bool) else option.default
        shown = "" if default is None or "[" in option.help else f" [{default}]"
        lines.append(f"  {name + '=':<13}{option.help}{shown}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """``["a.mp4", "dir/", "checkpoint=x.pt", "topk=3"]`` -> ``(inputs, options)`` with defaults filled in.

    An argument with ``=`` is an option unless its key is unknown and it names an existing file
    (a video called ``a=b.mp4``).

    Raises:
        ArgumentError: naming the argument that is unknown, malformed, out of range or missing.
    """
    inputs: list[str] = []
    given: dict[str, str] = {}
    for arg in argv:
        key, equals, value = arg.partition("=")
        key = key.strip().lstrip("+")
        if key.startswith("--") and key[2:] in OPTIONS:
            key = key[2:]
        if equals and key in OPTIONS:
            if key in given:
                raise ArgumentError(f"{key} is given twice ({key}={given[key]} and {arg})")
            given[key] = value.strip()
        elif equals and not os.path.exists(arg):
            raise ArgumentError(f"unknown option {key!r} in {arg!r}; known: {', '.join(OPTIONS)}")
        elif arg.startswith("-") and not os.path.exists(arg):
            raise ArgumentError(f"unknown flag {arg!r}: options are key=value, e.g. topk=3 (see --help)")
        else:
            inputs.append(arg)
    options = {name: option.default for name, option in OPTIONS.items()}
    for name, text in given.items():
        options[name] = OPTIONS[name].convert(text)
    if options["num_crops"] is not None:
        options["num_crops"] = int(options["num_crops"])
    if not options["checkpoint"]:
        raise ArgumentError("checkpoint=PATH is required (a last.pt or best.pt written by softpool-train)")
    from softpool_video.predict.predictor import resolve_checkpoint

    checkpoint = resolve_checkpoint(options["checkpoint"])
    if checkpoint.is_dir():
        raise ArgumentError(
            f"checkpoint={options['checkpoint']}: a folder without checkpoints/best.pt or checkpoints/last.pt"
        )
    if not checkpoint.is_file():
        raise ArgumentError(f"checkpoint={options['checkpoint']}: no such file")
    if not inputs:
        raise ArgumentError("no VIDEO or DIR given")
    if options["mode"] != "timeline":
        misplaced = [name for name in given if OPTIONS[name].timeline_only]
        if misplaced:
            raise ArgumentError(f"{', '.join(misplaced)} only apply to mode=timeline")
    return inputs, options


def _workers_for(option: Any, device: str) -> int:
    if option != "auto":
        return int(option)
    from softpool_video.predict.predictor import resolve_device

    if resolve_device(device).type != "cuda":
        return 0  # on the CPU the model needs the cores more than the decoder does
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _plot_paths(plot: str, videos: Sequence[Path]) -> list[Path]:
    """One PNG per video: ``plot`` itself for a single video, else ``<plot stem>_<video stem>.png``."""
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
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``softpool-predict`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK if argv else EXIT_BAD_ARGUMENT
    try:
        inputs, options = parse_args(argv)
    except ArgumentError as error:
        _error(f"{error}\n(see `{PROG} --help`)")
        return EXIT_BAD_ARGUMENT

    from tqdm import tqdm

    from softpool_video.predict.predictor import Predictor, find_videos
    from softpool_video.predict.report import format_prediction, format_timeline
    from softpool_video.train.checkpoint import CheckpointError

    videos, notes = find_videos(inputs)
    for note in notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    if not videos:
        _error("nothing to classify: no video found in " + ", ".join(inputs))
        return EXIT_NOTHING_CLASSIFIED

    try:
        predictor = Predictor(
            options["checkpoint"],
            device=options["device"],
            num_clips=options["num_clips"],
            num_crops=options["num_crops"],
            topk=options["topk"],
            batch_size=options["batch_size"],
            num_workers=_workers_for(options["workers"], options["device"]),
            decoder=options["decoder"],
        )
    except CheckpointError as error:
        _error(f"checkpoint={options['checkpoint']}: {error}")
        return EXIT_NOTHING_CLASSIFIED
    except ValueError as error:  # the checkpoint names a model or setting this version lacks
        _error(f"checkpoint={options['checkpoint']}: {error}")
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


if __name__ == "__main__":
    sys.exit(main())
