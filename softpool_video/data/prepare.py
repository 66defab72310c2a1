"""Check a downloaded dataset against its annotations, unpack it, and re-encode it small.

- ``compare_layout``: which listed videos are missing on disk, which files on disk are listed
  nowhere (extensions ignored, so a re-encoded copy still matches its lists);
- ``extract_archive``: unpack the official RAR/ZIP archives (HMDB-51 ships one RAR per class
  inside ``hmdb51_org.rar``; UCF-101 ships ``UCF101.rar``) with ``unrar``, ``7z``, ``bsdtar`` or
  ``unar``, whichever is installed (ZIP files with Python's ``zipfile``);
- ``reencode_videos``: H.264 copies with the short side scaled to 256 (or ``short_side``), in
  parallel, resumable, each written atomically and **verified against its source**: every frame
  of the source is kept with its presentation timestamp, and the copy must have the source's
  frame count, timeline and duration. Sources that are truncated or corrupt (fewer frames decode
  than they hold, decoding errors, cut files) are not copied but listed with the reason, so a
  broken file never turns silently into a shorter valid one.

The command lines of ``datasets/prepare_ucf101.py``, ``prepare_hmdb51.py`` and
``prepare_kinetics.py`` are ``main_ucf101``, ``main_hmdb51`` and ``main_kinetics`` here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from softpool_video.data.annotations import (
    VIDEO_EXTENSIONS,
    AnnotationError,
    hmdb51_split_file_class,
    iter_video_files,
    kinetics_class_names,
    parse_kinetics_csv,
    parse_ucf101,
    read_hmdb51_split_file,
    resolve_video_path,
)
from softpool_video.data.frame_index import FrameIndex, VideoDecodeError, build_frame_index, frame_index


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


# ------------------------------------------------------------------------------------------------
# archives
# ------------------------------------------------------------------------------------------------

# RAR extractors, first found wins: (program, arguments before the archive, ... after it)
_RAR_TOOLS = (
    ("unrar", lambda archive, dest: ["x", "-o+", "-idq", str(archive), f"{dest}{os.sep}"]),
    ("7z", lambda archive, dest: ["x", "-y", "-bd", f"-o{dest}", str(archive)]),
    ("bsdtar", lambda archive, dest: ["-xf", str(archive), "-C", str(dest)]),
    ("unar", lambda archive, dest: ["-q", "-f", "-o", str(dest), str(archive)]),
)


class ExtractError(RuntimeError):
    """An archive could not be unpacked (or no tool to unpack it is installed)."""


def rar_tool() -> str | None:
    """The first installed RAR extractor (``unrar``, ``7z``, ``bsdtar``, ``unar``), or ``None``."""
    return next((name for name, _ in _RAR_TOOLS if shutil.which(name)), None)


def extract_archive(archive: str | Path, destination: str | Path) -> None:
    """Unpack ``archive`` (``.rar`` or ``.zip``) into ``destination``."""
    archive, destination = Path(archive), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    if archive.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(destination)
        except (zipfile.BadZipFile, OSError) as err:
            raise ExtractError(f"{archive}: {err}") from err
        return
    tool = rar_tool()
    if tool is None:
        raise ExtractError(
            f"{archive}: no RAR extractor found; install one of unrar, 7z (p7zip-full), bsdtar "
            "(libarchive-tools) or unar, or unpack the archives yourself"
        )
    arguments = dict(_RAR_TOOLS)[tool](archive, destination)
    result = subprocess.run([tool, *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout).split())[:300]
        raise ExtractError(f"{archive}: {tool} failed (exit {result.returncode}): {detail}")


def _unpack_class_archives(video_dir: Path, extract: bool) -> list[str]:
    """HMDB-51 layout: ``<video_dir>/<class>.rar`` archives whose ``<class>/`` folder is missing.
    Unpacks them with ``extract``; returns the messages to print."""
    pending = sorted(p for p in video_dir.glob("*.rar") if not (video_dir / p.stem).is_dir())
    if not pending:
        return []
    if not extract:
        return [
            f"{len(pending)} classes are still RAR archives in {video_dir} (e.g. {pending[0].name}): "
            "run again with --extract to unpack them"
        ]
    for archive in pending:
        extract_archive(archive, video_dir)
    return [f"unpacked {len(pending)} class archives in {video_dir}"]


def _unpack_top_level(root: Path, folder: str, archives: Sequence[str], extract: bool) -> list[str]:
    """Unpack ``root/<archive>`` when ``root/<folder>`` is missing (the official download layout)."""
    if (root / folder).is_dir():
        return []
    for name in archives:
        archive = root / name
        if archive.is_file():
            if not extract:
                return [f"{root / folder} is missing but {archive} is there: run again with --extract"]
            extract_archive(archive, root)
            return [f"unpacked {archive}"]
    return []


# ------------------------------------------------------------------------------------------------
# verified re-encoding
# ------------------------------------------------------------------------------------------------


class SourceProblem(VideoDecodeError):
    """The source video is truncated or corrupt: it is not re-encoded."""


def _same_timeline(source: FrameIndex, copy: FrameIndex) -> str | None:
    """Why ``copy`` does not reproduce ``source``'s frames and timeline (``None`` when it does)."""
    if copy.num_frames != source.num_frames:
        return f"the copy has {copy.num_frames} frames, its source {source.num_frames}"
    gaps = np.diff(source.times)
    tolerance = min(1e-3, 0.25 * float(gaps.min())) if gaps.size else 1e-3
    offset = np.abs(copy.times - source.times).max()
    if offset > tolerance:
        return f"frame times differ from the source's by up to {offset * 1000:.1f} ms"
    if abs(copy.duration - source.duration) > 0.5 * source.frame_duration:
        return f"the copy lasts {copy.duration:.3f} s, its source {source.duration:.3f} s"
    return None


def reencode_video(source: str | Path, target: str | Path, short_side: int = 256, crf: int = 23) -> None:
    """Write ``target`` (H.264 .mp4) from ``source`` with its short side scaled to ``short_side``.

    Every frame is kept with its presentation timestamp (variable frame rates stay variable);
    smaller videos are not upscaled; audio is dropped. The copy is written to a temporary name,
    checked against the source (frame count, timeline, duration) and only then renamed, so an
    interrupted or failed run never leaves a file under ``target``.

    Raises:
        SourceProblem: the source is truncated or corrupt (not every frame it holds decodes).
        RuntimeError: the copy does not match its source.
    """
    import av
    from av.video.reformatter import VideoReformatter

    scaler = VideoReformatter()  # one scaling context for every frame
    source, target = Path(source), Path(target)
    try:
        source_index = frame_index(source)
    except VideoDecodeError as err:
        raise SourceProblem(source, err.reason) from err
    if source_index.truncated:
        raise SourceProblem(source, source_index.truncated)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}.mp4")
    time_base = source_index.time_base
    decoded = 0
    try:
        with av.open(str(source), metadata_errors="ignore") as src:
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
                out.time_base = out.codec_context.time_base = time_base
                out.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
                try:
                    # frame k gets the k-th presentation timestamp (decoders emit frames in
                    # presentation order; packed B-frames even scramble their own timestamps)
                    for frame in src.decode(stream):
                        if decoded >= source_index.num_frames:
                            break
                        resized = scaler.reformat(frame, width=out_w, height=out_h, format="yuv420p")
                        resized.pts, resized.time_base = int(source_index.pts[decoded]), time_base
                        decoded += 1
                        for packet in out.encode(resized):
                            dst.mux(packet)
                except av.FFmpegError as err:
                    raise SourceProblem(
                        source,
                        f"corrupt: decoding failed at frame {decoded} of {source_index.num_frames}: {err}",
                    ) from err
                for packet in out.encode():
                    dst.mux(packet)
        if decoded < source_index.num_frames:
            raise SourceProblem(
                source, f"corrupt or truncated: only {decoded} of its {source_index.num_frames} frames decode"
            )
        mismatch = _same_timeline(source_index, build_frame_index(partial))
        if mismatch:
            raise RuntimeError(f"{target}: the re-encoded copy does not match {source}: {mismatch}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def copy_matches_source(source: str | Path, target: str | Path) -> bool:
    """Whether an existing ``target`` holds every frame of ``source`` on the same timeline."""
    try:
        return _same_timeline(frame_index(source), build_frame_index(target)) is None
    except VideoDecodeError:
        return False


def _reencode_job(job: tuple[str, str, int, int]) -> tuple[str, str | None, bool]:
    """``(source, reason or None, whether the source itself is at fault)``."""
    source, target, short_side, crf = job
    if Path(target).exists() and copy_matches_source(source, target):
        return source, None, False  # resumable: a verified copy from an earlier run
    try:
        reencode_video(source, target, short_side, crf)
    except SourceProblem as err:
        return source, err.reason, True
    except Exception as err:  # report and carry on: one failure must not stop the batch
        return source, f"{type(err).__name__}: {err}", False
    return source, None, False


@dataclass
class ReencodeReport:
    """Sources that were truncated or corrupt, and copies that failed for other reasons."""

    bad_sources: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.bad_sources or self.failures)

    def extend(self, other: ReencodeReport) -> None:
        self.bad_sources += other.bad_sources
        self.failures += other.failures


def reencode_videos(
    pairs: Sequence[tuple[Path, Path]],
    short_side: int = 256,
    crf: int = 23,
    workers: int = 2,
    progress: bool = False,
) -> ReencodeReport:
    """Re-encode ``(source, target)`` pairs (a verified existing target is kept); report problems."""
    from tqdm import tqdm

    jobs = [(str(s), str(t), short_side, crf) for s, t in pairs]
    report = ReencodeReport()

    def note(source: str, reason: str | None, source_fault: bool) -> None:
        if reason is not None:
            (report.bad_sources if source_fault else report.failures).append((source, reason))

    with tqdm(total=len(jobs), desc="re-encoding", unit="video", disable=not progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                note(*_reencode_job(job))
                bar.update()
        else:
            with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
                for result in pool.map(_reencode_job, jobs, chunksize=2):
                    note(*result)
                    bar.update()
    return report


def _reencode_tree(sources: Sequence[Path], video_root: Path, output_root: Path, args) -> ReencodeReport:
    pairs = [(s, (output_root / s.relative_to(video_root)).with_suffix(".mp4")) for s in sources]
    return reencode_videos(pairs, args.short_side, args.crf, args.workers, progress=sys.stderr.isatty())


# ------------------------------------------------------------------------------------------------
# command lines
# ------------------------------------------------------------------------------------------------


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reencode",
        type=Path,
        metavar="OUTPUT_ROOT",
        help="also write verified H.264 copies with a smaller short side under OUTPUT_ROOT (same layout)",
    )
    parser.add_argument(
        "--short-side", type=int, default=256, help="short side of the copies (default: %(default)s)"
    )
    parser.add_argument(
        "--crf", type=int, default=23, help="x264 quality, lower is better (default: %(default)s)"
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel encoders (default: %(default)s)")


def _check_common(parser: argparse.ArgumentParser, args) -> None:
    if not args.root.is_dir():
        parser.error(f"ROOT {args.root} is not a directory")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.short_side < 2:
        parser.error(f"--short-side must be >= 2, got {args.short_side}")
    if not 0 <= args.crf <= 51:
        parser.error(f"--crf must be in 0..51, got {args.crf}")
    if args.reencode is not None and args.reencode.resolve() == args.root.resolve():
        parser.error("--reencode OUTPUT_ROOT must differ from ROOT (the copies would replace the sources)")


def _finish(report: LayoutReport, problems: ReencodeReport | None, output_root: Path | None) -> int:
    print(report.summary())
    if problems:
        if output_root is not None:
            listing = output_root / "reencode_problems.txt"
            listing.parent.mkdir(parents=True, exist_ok=True)
            rows = [("source", *item) for item in problems.bad_sources] + [
                ("copy", *item) for item in problems.failures
            ]
            listing.write_text("".join(f"{path}\t{kind}\t{reason}\n" for kind, path, reason in rows))
        if problems.bad_sources:
            print(f"{len(problems.bad_sources)} sources are truncated or corrupt and were not copied:")
            for source, reason in problems.bad_sources[:20]:
                print(f"  {source}: {reason}")
        if problems.failures:
            print(f"{len(problems.failures)} videos could not be re-encoded:")
            for source, reason in problems.failures[:20]:
                print(f"  {source}: {reason}")
        if output_root is not None:
            print(f"all of them are listed in {output_root / 'reencode_problems.txt'}")
    return 1 if report.missing or problems else 0


def _parser(prog: str, description: str, root_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("root", type=Path, help=root_help)
    return parser


def main_ucf101(argv: Sequence[str] | None = None) -> int:
    """``prepare_ucf101.py ROOT``: compare UCF-101 with its three splits; optionally unpack and re-encode."""
    parser = _parser(
        "prepare_ucf101.py",
        "Compare UCF-101 with its three splits; optionally unpack the official archives and re-encode.",
        "directory holding ucfTrainTestlist/ and UCF-101/ (or the official UCF101.rar and "
        "UCF101TrainTestSplits-RecognitionTask.zip)",
    )
    parser.add_argument(
        "--annotation-dir", default="ucfTrainTestlist", help="relative to ROOT (default: %(default)s)"
    )
    parser.add_argument("--video-dir", default="UCF-101", help="relative to ROOT (default: %(default)s)")
    parser.add_argument("--extract", action="store_true", help="unpack the official archives found in ROOT")
    _common_arguments(parser)
    args = parser.parse_args(argv)
    _check_common(parser, args)
    try:
        for line in _unpack_top_level(
            args.root, args.annotation_dir, ["UCF101TrainTestSplits-RecognitionTask.zip"], args.extract
        ) + _unpack_top_level(args.root, args.video_dir, ["UCF101.rar"], args.extract):
            print(line)
        annotation_dir, video_dir = args.root / args.annotation_dir, args.root / args.video_dir
        listed = [
            record.path
            for split in (1, 2, 3)
            for subset in ("train", "test")
            for record in parse_ucf101(annotation_dir, video_dir, split, subset).records
        ]
    except (FileNotFoundError, AnnotationError, ExtractError) as err:
        print(f"prepare_ucf101.py: {err}", file=sys.stderr)
        return 2
    report = compare_layout(listed, video_dir)
    problems = None
    if args.reencode:
        present = sorted({p for p in listed if p.exists()})
        problems = _reencode_tree(present, video_dir, args.reencode / args.video_dir, args)
        shutil.copytree(annotation_dir, args.reencode / args.annotation_dir, dirs_exist_ok=True)
        print(f"re-encoded copy: {args.reencode} (use data.root={args.reencode})")
    return _finish(report, problems, args.reencode)


def hmdb51_listed_videos(annotation_dir: Path, video_dir: Path) -> list[Path]:
    """Every video the HMDB-51 split files name (all three splits, ids 0, 1 and 2)."""
    split_files = sorted(p for p in annotation_dir.iterdir() if hmdb51_split_file_class(p) is not None)
    if not split_files:
        raise FileNotFoundError(f"no '<class>_test_split<N>.txt' files in {annotation_dir}")
    listed = []
    for path in split_files:
        class_name = hmdb51_split_file_class(path)[0]
        listed += [
            resolve_video_path(video_dir / class_name / name) for name, _ in read_hmdb51_split_file(path)
        ]
    return list(dict.fromkeys(listed))


def main_hmdb51(argv: Sequence[str] | None = None) -> int:
    """``prepare_hmdb51.py ROOT``: compare HMDB-51 with its split files; optionally unpack and re-encode."""
    parser = _parser(
        "prepare_hmdb51.py",
        "Compare HMDB-51 with its split files; optionally unpack the official RAR archives (one per "
        "class inside hmdb51_org.rar) and re-encode.",
        "directory holding testTrainMulti_7030_splits/ and hmdb51_org/ (or hmdb51_org.rar and "
        "test_train_splits.rar)",
    )
    parser.add_argument(
        "--annotation-dir",
        default="testTrainMulti_7030_splits",
        help="relative to ROOT (default: %(default)s)",
    )
    parser.add_argument("--video-dir", default="hmdb51_org", help="relative to ROOT (default: %(default)s)")
    parser.add_argument(
        "--extract",
        action="store_true",
        help="unpack hmdb51_org.rar, test_train_splits.rar and the per-class <class>.rar archives",
    )
    _common_arguments(parser)
    args = parser.parse_args(argv)
    _check_common(parser, args)
    annotation_dir, video_dir = args.root / args.annotation_dir, args.root / args.video_dir
    try:
        lines = _unpack_top_level(args.root, args.annotation_dir, ["test_train_splits.rar"], args.extract)
        lines += _unpack_top_level(args.root, args.video_dir, ["hmdb51_org.rar"], args.extract)
        if video_dir.is_dir():
            lines += _unpack_class_archives(video_dir, args.extract)
        for line in lines:
            print(line)
        if not annotation_dir.is_dir():
            raise FileNotFoundError(f"--annotation-dir {annotation_dir} is not a directory")
        if not video_dir.is_dir():
            raise FileNotFoundError(f"--video-dir {video_dir} is not a directory")
        listed = hmdb51_listed_videos(annotation_dir, video_dir)
    except (FileNotFoundError, AnnotationError, ExtractError) as err:
        print(f"prepare_hmdb51.py: {err}", file=sys.stderr)
        return 2
    report = compare_layout(listed, video_dir)
    problems = None
    if args.reencode:
        present = sorted({p for p in listed if p.exists()})
        problems = _reencode_tree(present, video_dir, args.reencode / args.video_dir, args)
        shutil.copytree(annotation_dir, args.reencode / args.annotation_dir, dirs_exist_ok=True)
        print(f"re-encoded copy: {args.reencode} (use data.root={args.reencode})")
    return _finish(report, problems, args.reencode)


def main_kinetics(argv: Sequence[str] | None = None) -> int:
    """``prepare_kinetics.py ROOT``: compare Kinetics clips with the CSVs; optionally re-encode."""
    parser = _parser(
        "prepare_kinetics.py",
        "Compare Kinetics clips with the CSVs; optionally re-encode.",
        "directory holding annotations/ and one video folder per split",
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
    _check_common(parser, args)
    annotation_dir = args.root / args.annotation_dir
    splits = [tuple(item.split(":", 1)) for item in args.splits]
    if any(len(split) != 2 or not all(split) for split in splits):
        parser.error(f"--splits takes CSV:DIR pairs, got {' '.join(args.splits)}")
    try:
        classes = kinetics_class_names(annotation_dir / splits[0][0])
        listed_per_split = [
            [
                r.path
                for r in parse_kinetics_csv(annotation_dir / csv_name, args.root / folder, classes).records
            ]
            for csv_name, folder in splits
        ]
    except (FileNotFoundError, AnnotationError) as err:
        print(f"prepare_kinetics.py: {err}", file=sys.stderr)
        return 2
    reports, problems = [], ReencodeReport()
    for (csv_name, video_folder), listed in zip(splits, listed_per_split):
        video_dir = args.root / video_folder
        report = compare_layout(listed, video_dir)
        print(f"== {csv_name} / {video_folder}")
        print(report.summary())
        reports.append(report)
        if args.reencode:
            present = sorted({p for p in listed if p.exists()})
            problems.extend(_reencode_tree(present, video_dir, args.reencode / video_folder, args))
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
    return _finish(total, problems if args.reencode else None, args.reencode)
