"""Check a downloaded dataset against its annotations, and re-encode it small for fast training.

- ``compare_layout``: which listed videos are missing on disk, which files on disk are listed
  nowhere (extensions ignored, so a re-encoded copy still matches its lists);
- ``reencode_videos``: H.264 copies with the short side scaled to 256 (or ``short_side``), in
  parallel, resumable (existing outputs are kept), each written atomically.

The command lines of ``datasets/prepare_ucf101.py`` and ``datasets/prepare_kinetics.py`` are
``main_ucf101`` and ``main_kinetics`` here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from softpool_video.data.annotations import (
    VIDEO_EXTENSIONS,
    iter_video_files,
    kinetics_class_names,
    parse_kinetics_csv,
    parse_ucf101,
)


@dataclass
class LayoutReport:
    """Listed videos that are missing, and video files that no list mentions."""

    listed: int
    on_disk: int
    missing: list[Path] = field(default_factory=list)
    extra: list[Path] = field(default_factory=list)

    def summary(self, examples: int = 5) -> str:
        lines = [f"{self.listed} videos listed, {self.on_disk} video files on disk"]
        for name, paths in (("missing", self.missing), ("extra (listed nowhere)", self.extra)):
            lines.append(f"{len(paths)} {name}" + (":" if paths else ""))
            lines += [f"  {p}" for p in paths[:examples]]
            if len(paths) > examples:
                lines.append(f"  ... {len(paths) - examples} more")
        return "\n".join(lines)


def _key(path: Path) -> str:
    return str(path.with_suffix("")) if path.suffix.lower() in VIDEO_EXTENSIONS else str(path)


def compare_layout(listed: Iterable[Path], video_root: str | Path) -> LayoutReport:
    """Compare the paths the annotations list with the video files under ``video_root``."""
    listed = list(dict.fromkeys(Path(p) for p in listed))
    on_disk = list(iter_video_files(video_root))
    disk_keys = {_key(p) for p in on_disk}
    listed_keys = {_key(p) for p in listed}
    missing = sorted(p for p in listed if _key(p) not in disk_keys)
    extra = sorted(p for p in on_disk if _key(p) not in listed_keys)
    return LayoutReport(len(listed), len(on_disk), missing, extra)


def reencode_video(source: str | Path, target: str | Path, short_side: int = 256, crf: int = 23) -> None:
    """Write ``target`` (H.264 .mp4) from ``source`` with its short side scaled to ``short_side``.

    Frame rate and frame count are kept; smaller videos are not upscaled. Written to a temporary
    name and renamed, so an interrupted run never leaves a half file under ``target``.
    """
    import av

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}.mp4")
    try:
        with av.open(str(source)) as src:
            stream = src.streams.video[0]
            stream.thread_type = "AUTO"
            width, height = stream.codec_context.width, stream.codec_context.height
            scale = min(1.0, short_side / min(width, height))
            # even sizes: 4:2:0 chroma
            out_w, out_h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
            rate = stream.average_rate or stream.guessed_rate or 30
            with av.open(str(partial), "w") as dst:
                out = dst.add_stream("libx264", rate=rate)
                out.width, out.height, out.pix_fmt = out_w, out_h, "yuv420p"
                out.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
                for index, frame in enumerate(src.decode(stream)):
                    resized = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                    resized.pts = index
                    for packet in out.encode(resized):
                        dst.mux(packet)
                for packet in out.encode():
                    dst.mux(packet)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _reencode_job(job: tuple[str, str, int, int]) -> tuple[str, str | None]:
    source, target, short_side, crf = job
    try:
        reencode_video(source, target, short_side, crf)
    except Exception as err:  # report and carry on: one bad source must not stop the batch
        return source, f"{type(err).__name__}: {err}"
    return source, None


def reencode_videos(
    pairs: Sequence[tuple[Path, Path]],
    short_side: int = 256,
    crf: int = 23,
    workers: int = 2,
    progress: bool = False,
) -> list[tuple[str, str]]:
    """Re-encode ``(source, target)`` pairs whose target does not exist yet; return the failures."""
    from tqdm import tqdm

    jobs = [(str(s), str(t), short_side, crf) for s, t in pairs if not Path(t).exists()]
    failures = []
    with tqdm(total=len(jobs), desc="re-encoding", unit="video", disable=not progress) as bar:
        if workers <= 1:
            results: Iterable[tuple[str, str | None]] = map(_reencode_job, jobs)
            for source, reason in results:
                if reason:
                    failures.append((source, reason))
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for source, reason in pool.map(_reencode_job, jobs, chunksize=2):
                    if reason:
                        failures.append((source, reason))
                    bar.update()
    return failures


def _reencode_tree(
    sources: Sequence[Path], video_root: Path, output_root: Path, args
) -> list[tuple[str, str]]:
    pairs = [(s, (output_root / s.relative_to(video_root)).with_suffix(".mp4")) for s in sources]
    return reencode_videos(pairs, args.short_side, args.crf, args.workers, progress=sys.stderr.isatty())


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reencode",
        type=Path,
        metavar="OUTPUT_ROOT",
        help="also write H.264 copies with a smaller short side under OUTPUT_ROOT (same layout)",
    )
    parser.add_argument(
        "--short-side", type=int, default=256, help="short side of the copies (default: %(default)s)"
    )
    parser.add_argument(
        "--crf", type=int, default=23, help="x264 quality, lower is better (default: %(default)s)"
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel encoders (default: %(default)s)")


def _finish(report: LayoutReport, failures: list[tuple[str, str]] | None) -> int:
    print(report.summary())
    if failures:
        print(f"{len(failures)} videos could not be re-encoded:")
        for source, reason in failures[:20]:
            print(f"  {source}: {reason}")
    return 1 if report.missing or failures else 0


def main_ucf101(argv: Sequence[str] | None = None) -> int:
    """``prepare_ucf101.py ROOT``: compare UCF-101 with its three splits; optionally re-encode."""
    parser = argparse.ArgumentParser(
        prog="prepare_ucf101.py", description=main_ucf101.__doc__.split(":", 1)[1].strip()
    )
    parser.add_argument("root", type=Path, help="directory holding ucfTrainTestlist/ and UCF-101/")
    parser.add_argument(
        "--annotation-dir", default="ucfTrainTestlist", help="relative to ROOT (default: %(default)s)"
    )
    parser.add_argument("--video-dir", default="UCF-101", help="relative to ROOT (default: %(default)s)")
    _common_arguments(parser)
    args = parser.parse_args(argv)
    annotation_dir, video_dir = args.root / args.annotation_dir, args.root / args.video_dir
    listed = [
        record.path
        for split in (1, 2, 3)
        for subset in ("train", "test")
        for record in parse_ucf101(annotation_dir, video_dir, split, subset).records
    ]
    report = compare_layout(listed, video_dir)
    failures = None
    if args.reencode:
        present = sorted({p for p in listed if p.exists()})
        failures = _reencode_tree(present, video_dir, args.reencode / args.video_dir, args)
        shutil.copytree(annotation_dir, args.reencode / args.annotation_dir, dirs_exist_ok=True)
        print(f"re-encoded copy: {args.reencode} (use data.root={args.reencode})")
    return _finish(report, failures)


def main_kinetics(argv: Sequence[str] | None = None) -> int:
    """``prepare_kinetics.py ROOT``: compare Kinetics clips with the CSVs; optionally re-encode."""
    parser = argparse.ArgumentParser(
        prog="prepare_kinetics.py", description=main_kinetics.__doc__.split(":", 1)[1].strip()
    )
    parser.add_argument(
        "root", type=Path, help="directory holding annotations/ and one video folder per split"
    )
    parser.add_argument(
        "--annotation-dir", default="annotations", help="relative to ROOT (default: %(default)s)"
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["train.csv:train", "validate.csv:val"],
        metavar="CSV:DIR",
        help="annotation CSV and video folder of each split (default: %(default)s)",
    )
    _common_arguments(parser)
    args = parser.parse_args(argv)
    annotation_dir = args.root / args.annotation_dir
    splits = [tuple(item.split(":", 1)) for item in args.splits]
    classes = kinetics_class_names(annotation_dir / splits[0][0])
    reports, failures = [], []
    for csv_name, video_folder in splits:
        video_dir = args.root / video_folder
        listed = [r.path for r in parse_kinetics_csv(annotation_dir / csv_name, video_dir, classes).records]
        report = compare_layout(listed, video_dir)
        print(f"== {csv_name} / {video_folder}")
        print(report.summary())
        reports.append(report)
        if args.reencode:
            present = sorted({p for p in listed if p.exists()})
            failures += _reencode_tree(present, video_dir, args.reencode / video_folder, args)
    if args.reencode:
        shutil.copytree(annotation_dir, args.reencode / args.annotation_dir, dirs_exist_ok=True)
        print(f"re-encoded copy: {args.reencode} (use data.root={args.reencode})")
    total = LayoutReport(
        sum(r.listed for r in reports),
        sum(r.on_disk for r in reports),
        [p for r in reports for p in r.missing],
        [p for r in reports for p in r.extra],
    )
    print("== all splits")
    return _finish(total, failures if args.reencode else None)
