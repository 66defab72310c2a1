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
``prepare_kinetics.py`` are ``main_ucf101``, ``main_hmdb51`` and ``main_kinetics`` here, in the
grammar of every tool (``softpool_video/cli.py``): ``prepare_ucf101.py ROOT [key=value ...]``, e.g.
``prepare_ucf101.py /datasets/ucf101 extract=true reencode=/datasets/ucf101_256``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
            "run again with extract=true to unpack them"
        ]
    for archive in pending:
        extract_archive(archive, video_dir)
    return [f"unpacked {len(pending)} class archives in {video_dir}"]


def _archive_to_unpack(
    root: Path, key: str, folder: str, archives: Sequence[str], extract: bool
) -> Path | None:
    """The official archive that holds ``root/<folder>`` when that folder is missing (``None`` when
    it is there). Raises :class:`~softpool_video.cli.UsageError` naming ``key`` when neither is
    there, or when the archive is there but ``extract=true`` was not given. Unpacks nothing."""
    from softpool_video.cli import UsageError

    if (root / folder).is_dir():
        return None
    for name in archives:
        archive = root / name
        if archive.is_file():
            if not extract:
                raise UsageError(
                    f"{key}={folder}: {root / folder} is missing but {archive} is there: "
                    "add extract=true to unpack it"
                )
            return archive
    raise UsageError(
        f"{key}={folder}: {root / folder} is not a folder "
        f"(and no {' or '.join(archives)} in {root} to unpack)"
    )


def _unpack_top_level(root: Path, folder: str, archive: Path | None) -> list[str]:
    """Unpack ``archive`` (from :func:`_archive_to_unpack`) into ``root``; it must create ``folder``."""
    from softpool_video.cli import Failure

    if archive is None:
        return []
    extract_archive(archive, root)
    if not (root / folder).is_dir():
        raise Failure(f"unpacking {archive} did not create {root / folder}")
    return [f"unpacked {archive}"]


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
# command lines (the grammar of softpool_video/cli.py)
# ------------------------------------------------------------------------------------------------

#: The flags of the former argparse command lines and their key=value spelling.
_LEGACY_FLAGS = {
    "--annotation-dir": "annotation_dir=DIR",
    "--video-dir": "video_dir=DIR",
    "--extract": "extract=true",
    "--reencode": "reencode=OUTPUT_ROOT",
    "--short-side": "short_side=N",
    "--crf": "crf=N",
    "--workers": "workers=N",
    "--splits": "splits=train.csv:train,validate.csv:val",
}

#: Options that only matter when copies are written.
_REENCODE_ONLY = ("short_side", "crf", "workers")


def _split_pair(name: str, text: str) -> str:
    """A Kinetics split ``CSV:DIR`` (annotation CSV, video folder), both relative to ROOT."""
    from softpool_video.cli import UsageError

    csv_name, colon, folder = text.partition(":")
    if not colon or not csv_name.strip() or not folder.strip():
        raise UsageError(
            f"{name} takes CSV:DIR pairs like {name}=train.csv:train,validate.csv:val, got {text!r}"
        )
    return f"{csv_name.strip()}:{folder.strip()}"


def _command(prog: str, summary: str, root_help: str, options: dict[str, Any]) -> Any:
    """A prepare script's command line: ``ROOT`` plus ``options`` and the re-encoding options."""
    from softpool_video import cli

    options = {
        **options,
        "reencode": cli.Option(
            None, cli.path(), "also write verified H.264 copies under this folder, same layout"
        ),
        "short_side": cli.Option(
            256, cli.integer(2), "short side of the copies, never upscaled (with reencode=)"
        ),
        "crf": cli.Option(23, cli.integer(0, 51), "x264 quality, lower is better (with reencode=)"),
        "workers": cli.Option(2, cli.integer(1), "parallel encoders (with reencode=)"),
    }
    return cli.Command(
        prog=prog,
        summary=summary,
        options=options,
        positionals=cli.Positionals("ROOT", minimum=1, maximum=1),
        usage_line="ROOT [key=value ...]",
        epilog=(
            f"ROOT: {root_help}.\n\n"
            "Prints the listed videos that are missing and the files no list names. Exits 1 when a\n"
            "listed video is missing or a source cannot be copied (those are listed in\n"
            "OUTPUT_ROOT/reencode_problems.txt)."
        ),
        legacy_flags={flag: hint for flag, hint in _LEGACY_FLAGS.items() if hint.split("=")[0] in options},
    )


def _folder_option(default: str, what: str) -> Any:
    from softpool_video import cli

    return cli.Option(default, cli.text(optional=False), f"{what}, relative to ROOT")


def _checked_root(args, video_folders: Sequence[str]) -> Path:
    """ROOT, checked with the output options before any work: a missing ROOT, an OUTPUT_ROOT that
    cannot be written or would mix the copies with their sources are bad arguments."""
    from softpool_video import cli

    root = Path(args.positionals[0])
    if not root.is_dir():
        raise cli.UsageError(f"{root}: {'is a file, not a' if root.exists() else 'no such'} dataset folder")
    given = [key for key in _REENCODE_ONLY if key in args.given]
    if given and args.reencode is None:
        raise cli.UsageError(f"{given[0]}= only applies with reencode=OUTPUT_ROOT")
    if args.reencode is not None:
        output = cli.writable_folder("reencode", args.reencode).resolve()
        for source in (root, *(root / folder for folder in video_folders)):
            if output == source.resolve() or source.resolve() in output.parents:
                raise cli.UsageError(
                    f"reencode={args.reencode}: must be outside {source} (the copies would mix with "
                    "or replace the sources); give another folder"
                )
    return root


def _listed_or_usage_error(read) -> Any:
    """``read()``; a missing or malformed annotation file is a bad argument (exit 2)."""
    from softpool_video.cli import UsageError

    try:
        return read()
    except (FileNotFoundError, NotADirectoryError, AnnotationError) as err:
        raise UsageError(str(err)) from None


def _finish(report: LayoutReport, problems: ReencodeReport | None, output_root: Path | None) -> int:
    """Print the report; exit status 0, or :class:`~softpool_video.cli.Failure` (1) saying why not."""
    from softpool_video.cli import Failure

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

    def count(items: Sequence, one: str, many: str) -> str:
        return f"{len(items)} {one if len(items) == 1 else many}"

    reasons = []
    if report.missing:
        reasons.append(count(report.missing, "listed video is missing", "listed videos are missing"))
    if problems and problems.bad_sources:
        reasons.append(
            count(problems.bad_sources, "source is truncated or corrupt", "sources are truncated or corrupt")
        )
    if problems and problems.failures:
        reasons.append(
            count(problems.failures, "video could not be re-encoded", "videos could not be re-encoded")
        )
    if reasons:
        raise Failure("; ".join(reasons) + " (see the report above)")
    return 0


def _copy_annotations(annotation_dir: Path, output_root: Path, folder: str) -> None:
    shutil.copytree(annotation_dir, output_root / folder, dirs_exist_ok=True)
    print(f"re-encoded copy: {output_root} (use data.root={output_root})")


def _run(command: Any, main, argv: Sequence[str] | None) -> int:
    from softpool_video import cli

    return cli.run(command, main, argv, failures=(ExtractError,))


def _ucf101_command() -> Any:
    from softpool_video import cli

    return _command(
        "prepare_ucf101.py",
        "Compare UCF-101 with its three splits; optionally unpack the official archives and re-encode.",
        "the folder holding ucfTrainTestlist/ and UCF-101/, or the official\n"
        "UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip (extract=true unpacks them)",
        {
            "annotation_dir": _folder_option("ucfTrainTestlist", "folder of classInd.txt and the lists"),
            "video_dir": _folder_option("UCF-101", "folder of the class folders"),
            "extract": cli.Option(False, cli.boolean(), "unpack the official archives found in ROOT"),
        },
    )


def main_ucf101(argv: Sequence[str] | None = None) -> int:
    """``prepare_ucf101.py ROOT [key=value ...]``: compare UCF-101 with its three splits; optionally
    unpack and re-encode."""
    return _run(_ucf101_command(), _ucf101, argv)


def _ucf101(args) -> int:
    root = _checked_root(args, [args.video_dir])
    archives = [
        _archive_to_unpack(
            root,
            "annotation_dir",
            args.annotation_dir,
            ["UCF101TrainTestSplits-RecognitionTask.zip"],
            args.extract,
        ),
        _archive_to_unpack(root, "video_dir", args.video_dir, ["UCF101.rar"], args.extract),
    ]
    for folder, archive in zip((args.annotation_dir, args.video_dir), archives):
        for line in _unpack_top_level(root, folder, archive):
            print(line)
    annotation_dir, video_dir = root / args.annotation_dir, root / args.video_dir
    listed = _listed_or_usage_error(
        lambda: [
            record.path
            for split in (1, 2, 3)
            for subset in ("train", "test")
            for record in parse_ucf101(annotation_dir, video_dir, split, subset).records
        ]
    )
    report = compare_layout(listed, video_dir)
    problems = None
    output = Path(args.reencode) if args.reencode is not None else None
    if output is not None:
        present = sorted({p for p in listed if p.exists()})
        problems = _reencode_tree(present, video_dir, output / args.video_dir, args)
        _copy_annotations(annotation_dir, output, args.annotation_dir)
    return _finish(report, problems, output)


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


def _hmdb51_command() -> Any:
    from softpool_video import cli

    return _command(
        "prepare_hmdb51.py",
        "Compare HMDB-51 with its split files; optionally unpack the official RAR archives (one per\n"
        "class inside hmdb51_org.rar) and re-encode.",
        "the folder holding testTrainMulti_7030_splits/ and hmdb51_org/, or the\n"
        "official hmdb51_org.rar and test_train_splits.rar (extract=true unpacks them)",
        {
            "annotation_dir": _folder_option("testTrainMulti_7030_splits", "folder of the split files"),
            "video_dir": _folder_option("hmdb51_org", "folder of the class folders"),
            "extract": cli.Option(
                False,
                cli.boolean(),
                "unpack hmdb51_org.rar, test_train_splits.rar and the <class>.rar archives",
            ),
        },
    )


def main_hmdb51(argv: Sequence[str] | None = None) -> int:
    """``prepare_hmdb51.py ROOT [key=value ...]``: compare HMDB-51 with its split files; optionally
    unpack and re-encode."""
    return _run(_hmdb51_command(), _hmdb51, argv)


def _hmdb51(args) -> int:
    root = _checked_root(args, [args.video_dir])
    archives = [
        _archive_to_unpack(
            root, "annotation_dir", args.annotation_dir, ["test_train_splits.rar"], args.extract
        ),
        _archive_to_unpack(root, "video_dir", args.video_dir, ["hmdb51_org.rar"], args.extract),
    ]
    annotation_dir, video_dir = root / args.annotation_dir, root / args.video_dir
    lines = []
    for folder, archive in zip((args.annotation_dir, args.video_dir), archives):
        lines += _unpack_top_level(root, folder, archive)
    lines += _unpack_class_archives(video_dir, args.extract)
    for line in lines:
        print(line)
    listed = _listed_or_usage_error(lambda: hmdb51_listed_videos(annotation_dir, video_dir))
    report = compare_layout(listed, video_dir)
    problems = None
    output = Path(args.reencode) if args.reencode is not None else None
    if output is not None:
        present = sorted({p for p in listed if p.exists()})
        problems = _reencode_tree(present, video_dir, output / args.video_dir, args)
        _copy_annotations(annotation_dir, output, args.annotation_dir)
    return _finish(report, problems, output)


def _kinetics_command() -> Any:
    from softpool_video import cli

    return _command(
        "prepare_kinetics.py",
        "Compare Kinetics clips with the CSVs; optionally re-encode.",
        "the folder holding annotations/ and one video folder per split",
        {
            "annotation_dir": _folder_option("annotations", "folder of the CSVs"),
            "splits": cli.Option(
                ["train.csv:train", "validate.csv:val"],
                cli.listing(_split_pair),
                "CSV:DIR of each split: its CSV (in annotation_dir) and video folder (in ROOT)",
            ),
        },
    )


def main_kinetics(argv: Sequence[str] | None = None) -> int:
    """``prepare_kinetics.py ROOT [key=value ...]``: compare Kinetics clips with the CSVs; optionally
    re-encode."""
    return _run(_kinetics_command(), _kinetics, argv)


def _kinetics(args) -> int:
    from softpool_video.cli import UsageError

    splits = [tuple(item.split(":", 1)) for item in args.splits]
    root = _checked_root(args, [folder for _, folder in splits])
    annotation_dir = root / args.annotation_dir
    if not annotation_dir.is_dir():
        raise UsageError(f"annotation_dir={args.annotation_dir}: {annotation_dir} is not a folder")
    for csv_name, folder in splits:
        if not (annotation_dir / csv_name).is_file():
            raise UsageError(f"splits={csv_name}:{folder}: {annotation_dir / csv_name} does not exist")
        if not (root / folder).is_dir():
            raise UsageError(f"splits={csv_name}:{folder}: {root / folder} is not a folder")
    classes = _listed_or_usage_error(lambda: kinetics_class_names(annotation_dir / splits[0][0]))
    listed_per_split = _listed_or_usage_error(
        lambda: [
            [r.path for r in parse_kinetics_csv(annotation_dir / csv_name, root / folder, classes).records]
            for csv_name, folder in splits
        ]
    )
    output = Path(args.reencode) if args.reencode is not None else None
    reports, problems = [], ReencodeReport()
    for (csv_name, video_folder), listed in zip(splits, listed_per_split):
        video_dir = root / video_folder
        report = compare_layout(listed, video_dir)
        print(f"== {csv_name} / {video_folder}")
        print(report.summary())
        reports.append(report)
        if output is not None:
            present = sorted({p for p in listed if p.exists()})
            problems.extend(_reencode_tree(present, video_dir, output / video_folder, args))
    if output is not None:
        _copy_annotations(annotation_dir, output, args.annotation_dir)
    total = LayoutReport(
        sum(r.listed for r in reports),
        sum(r.on_disk for r in reports),
        [p for r in reports for p in r.missing],
        [p for r in reports for p in r.extra],
    )
    print("== all splits")
    return _finish(total, problems if output is not None else None, output)
