"""Find unreadable videos before training: decode every frame of every file, in parallel.

``check_videos(paths)`` returns ``(path, reason)`` for each file that does not exist, cannot be
opened, holds fewer frames than its header lists (truncated), or fails to decode completely. The
frame count is the stream's own (its packets), so variable-frame-rate files and files whose
audio runs longer than the video are not flagged.

``videos_to_check(source)`` says which files a dataset root, folder, list or video names,
reading lists with the same annotation parsers the datasets use (``annotations.py``) and
resolving their paths the same way:

- a video file: itself;
- a UCF-101 list (``trainlist0N.txt``/``testlist0N.txt`` next to ``classInd.txt``), an HMDB-51
  split file (``<class>_test_splitN.txt``), a Kinetics CSV (``label,youtube_id,time_start,
  time_end,split``; the test CSV has no label), or a generic ``path label`` / ``path,label``
  list (optional header, quoted paths): the videos it lists;
- a directory holding such annotations (a dataset root, e.g. ``ucfTrainTestlist/`` with
  ``UCF-101/``): every video any of its lists names, missing ones included;
- any other directory: every video file under it.

Listed paths are relative to a video folder. Unless ``video_dir`` says which, the folder where
most listed files exist is used (the list's folder, the dataset root or one of their
sub-folders) and reported, so a wrong guess shows instead of being silent.

Command line (the grammar of every tool, ``softpool_video/cli.py``): ``python
datasets/check_videos.py SOURCE... [backend=pyav,decord] [workers=N] [output=unreadable.txt]
[video_dir=DIR]``.
"""

from __future__ import annotations

import contextlib
import csv
import re
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softpool_video.constants import DECODERS
from softpool_video.data.annotations import (
    VIDEO_EXTENSIONS,
    AnnotationError,
    hmdb51_split_file_class,
    iter_video_files,
    parse_kinetics_csv,
    parse_path_label_list,
    parse_ucf101,
    read_hmdb51_split_file,
    resolve_video_path,
)
from softpool_video.data.decoders import (
    DEFAULT_BACKEND,
    VideoDecodeError,
    check_backend,
    open_video,
)

_UCF_LIST = re.compile(r"^(?P<subset>train|test)list0(?P<split>[123])\.txt$", re.IGNORECASE)


def check_video(path: str | Path, backend: str = DEFAULT_BACKEND) -> str | None:
    """``None`` if every frame of ``path`` decodes, else why not."""
    try:
        with open_video(path, backend=backend) as video:
            expected = video.info.num_frames
            decoded = video.count_decodable_frames()
    except VideoDecodeError as err:
        return err.reason
    if decoded < expected:
        return f"only {decoded} of its {expected} frames decode"
    return None


def _check_one(job: tuple[str, tuple[str, ...]]) -> tuple[str, str | None]:
    path, backends = job
    reasons = []
    for backend in backends:
        reason = check_video(path, backend)
        if reason is not None:
            reasons.append(reason if len(backends) == 1 else f"{backend}: {reason}")
    return path, "; ".join(reasons) or None


def check_videos(
    paths: Iterable[str | Path],
    backend: str | Sequence[str] = DEFAULT_BACKEND,
    workers: int = 2,
    progress: bool = False,
) -> list[tuple[str, str]]:
    """``(path, reason)`` of every unreadable video among ``paths``, in input order.

    ``backend``: one backend or several; a file fails when any of them cannot decode it.
    """
    from tqdm import tqdm

    backends = (backend,) if isinstance(backend, str) else tuple(backend)
    jobs = [(str(p), backends) for p in dict.fromkeys(str(p) for p in paths)]
    results: dict[str, str | None] = {}
    with tqdm(total=len(jobs), desc="checking videos", unit="video", disable=not progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                path, reason = _check_one(job)
                results[path] = reason
                bar.update()
        else:
            with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
                for path, reason in pool.map(_check_one, jobs, chunksize=4):
                    results[path] = reason
                    bar.update()
    return [(path, reason) for path, reason in results.items() if reason is not None]


# ------------------------------------------------------------------------------------------------
# which files a source names
# ------------------------------------------------------------------------------------------------


@dataclass
class CheckSource:
    """The videos a command-line source names, and how they were found (printed)."""

    videos: list[Path]
    description: str


def _is_kinetics_csv(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return {"youtube_id", "time_start", "time_end"} <= {field.strip() for field in header}


def _candidate_video_dirs(list_path: Path) -> list[Path]:
    """Where a list's relative paths may start: its folder, the folder above (the dataset root),
    and their sub-folders (``UCF-101/``, ``hmdb51_org/``, ``train/``, ...)."""
    folder = list_path.parent
    candidates = [folder, folder.parent]
    for base in (folder.parent, folder):
        with contextlib.suppress(OSError):
            candidates += sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    return list(dict.fromkeys(candidates))


def _best(parse, candidates: Sequence[Path]) -> tuple[list[Path], Path]:
    """Parse with each candidate video folder; keep the one where most listed files exist."""
    best_paths: list[Path] | None = None
    best_dir, best_found = candidates[0], -1
    for candidate in candidates:
        paths = parse(candidate)
        found = sum(p.is_file() for p in paths)
        if found > best_found:
            best_paths, best_dir, best_found = paths, candidate, found
        if found == len(paths):
            break
    return best_paths or [], best_dir


def _list_videos(list_path: Path, video_dir: Path | None) -> CheckSource:
    """The videos of one annotation list, parsed as the datasets parse it."""
    ucf = _UCF_LIST.match(list_path.name)
    hmdb = hmdb51_split_file_class(list_path)
    if ucf and (list_path.parent / "classInd.txt").is_file():
        split, subset = int(ucf["split"]), ucf["subset"].lower()
        kind = f"UCF-101 {subset}list (split {split})"

        def parse(directory: Path) -> list[Path]:
            return [r.path for r in parse_ucf101(list_path.parent, directory, split, subset).records]

    elif hmdb is not None:
        return _hmdb_videos([list_path], video_dir)

    elif list_path.suffix.lower() == ".csv" and _is_kinetics_csv(list_path):
        kind = "Kinetics CSV"

        def parse(directory: Path) -> list[Path]:
            return [r.path for r in parse_kinetics_csv(list_path, directory).records]

    else:
        kind = "list"

        def parse(directory: Path) -> list[Path]:
            return [r.path for r in parse_path_label_list(list_path, directory).records]

    candidates = [video_dir] if video_dir is not None else _candidate_video_dirs(list_path)
    videos, chosen = _best(parse, candidates)
    return CheckSource(videos, f"{list_path}: {kind}, {len(videos)} videos, paths relative to {chosen}")


def _hmdb_videos(split_files: Sequence[Path], video_dir: Path | None) -> CheckSource:
    """The videos of HMDB-51 split files (``<class>_test_splitN.txt``): ``<video dir>/<class>/<name>``
    for every line, whatever its 0/1/2 id."""
    entries = [
        (hmdb51_split_file_class(path)[0], name)
        for path in split_files
        for name, _ in read_hmdb51_split_file(path)
    ]

    def parse(directory: Path) -> list[Path]:
        return list(dict.fromkeys(resolve_video_path(directory / cls / name) for cls, name in entries))

    candidates = [video_dir] if video_dir is not None else _candidate_video_dirs(split_files[0])
    videos, chosen = _best(parse, candidates)
    where = (
        split_files[0]
        if len(split_files) == 1
        else f"{len(split_files)} split files in {split_files[0].parent}"
    )
    return CheckSource(videos, f"{where}: HMDB-51, {len(videos)} videos, paths relative to {chosen}/<class>")


def _annotation_files(directory: Path) -> list[Path]:
    """Dataset lists in ``directory`` or one level below: UCF-101 lists, HMDB-51 split files,
    Kinetics CSVs (generic lists are only taken when named explicitly)."""
    found = []
    for folder in [directory, *sorted(p for p in directory.iterdir() if p.is_dir())]:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.is_file():
                continue
            ucf = _UCF_LIST.match(entry.name) and (folder / "classInd.txt").is_file()
            hmdb = hmdb51_split_file_class(entry) is not None
            kinetics = entry.suffix.lower() == ".csv" and _is_kinetics_csv(entry)
            if ucf or hmdb or kinetics:
                found.append(entry)
    return found


def videos_to_check(source: str | Path, video_dir: str | Path | None = None) -> list[CheckSource]:
    """The videos ``source`` names (see the module docstring). Raises ``FileNotFoundError`` for a
    missing source and ``AnnotationError`` for a malformed list."""
    source = Path(source)
    video_dir = Path(video_dir) if video_dir is not None else None
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if source.is_file():
        if source.suffix.lower() in VIDEO_EXTENSIONS:
            return [CheckSource([source], f"{source}: a video")]
        return [_list_videos(source, video_dir)]
    lists = _annotation_files(source)
    if lists:
        hmdb = [path for path in lists if hmdb51_split_file_class(path) is not None]
        found = [_list_videos(path, video_dir) for path in lists if path not in hmdb]
        for folder in dict.fromkeys(path.parent for path in hmdb):
            found.append(_hmdb_videos([p for p in hmdb if p.parent == folder], video_dir))
        return found
    videos = list(iter_video_files(source, VIDEO_EXTENSIONS))
    return [CheckSource(videos, f"{source}: a folder, {len(videos)} video files")]


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


#: The flags of the former argparse command line and their key=value spelling.
_LEGACY_FLAGS = {
    "--video-dir": "video_dir=DIR",
    "--backend": "backend=pyav,decord",
    "--workers": "workers=N",
    "--output": "output=FILE",
}


def _command() -> Any:
    from softpool_video import cli

    return cli.Command(
        prog="check_videos.py",
        summary="Decode every frame of every video of a dataset root, folder, list or CSV, and list\n"
        "the unreadable ones (missing, truncated, corrupt, not a video).",
        options={
            "video_dir": cli.Option(
                None, cli.path(), "folder the listed paths are relative to [where most listed files exist]"
            ),
            "backend": cli.Option(
                [DEFAULT_BACKEND],
                cli.listing(choices=DECODERS),
                f"decoder to check with ({', '.join(DECODERS)}), or several (pyav,decord): a file "
                f"fails if any fails [{DEFAULT_BACKEND}]",
            ),
            "workers": cli.Option(2, cli.integer(1), "parallel processes"),
            "output": cli.Option(
                "unreadable_videos.txt", cli.path(optional=False), "where to write 'path<TAB>reason' lines"
            ),
        },
        positionals=cli.Positionals("SOURCE", minimum=1),
        usage_line="SOURCE... [key=value ...]",
        epilog="SOURCE: dataset roots, video folders (searched recursively), list/CSV files, or videos.\n\n"
        "Exits 1 when a video is unreadable (the list is written either way).",
        legacy_flags=_LEGACY_FLAGS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``check_videos.py SOURCE... [key=value ...]``: exit 1 if any video is unreadable, 2 for bad
    arguments (nothing written)."""
    from softpool_video import cli

    return cli.run(_command(), _main, argv)


def _main(args: Any) -> int:
    from softpool_video import cli

    # Every input and the output place are checked before any decoding: a typo is exit 2, not a
    # report about nothing, and a report that cannot be written is not found out at the end.
    for source in args.positionals:
        if not Path(source).exists():
            raise cli.UsageError(f"{source}: no such file or folder")
    video_dir = Path(args.video_dir) if args.video_dir is not None else None
    if video_dir is not None and not video_dir.is_dir():
        raise cli.UsageError(f"video_dir={args.video_dir}: no such folder")
    output = cli.writable_file("output", args.output)
    for backend in args.backend:
        try:
            check_backend(backend)
        except ValueError as err:
            raise cli.UsageError(f"backend={backend}: {cli.error_summary(err)}") from None
    try:
        found = [item for source in args.positionals for item in videos_to_check(source, video_dir)]
    except (FileNotFoundError, AnnotationError) as err:
        raise cli.UsageError(str(err)) from None
    for item in found:
        print(item.description)
    paths = list(dict.fromkeys(p for item in found for p in item.videos))
    if not paths:
        raise cli.UsageError(f"no video files in {' '.join(args.positionals)}")
    bad = check_videos(paths, args.backend, args.workers, progress=sys.stderr.isatty())
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("".join(f"{path}\t{reason}\n" for path, reason in bad))
    except OSError as err:
        raise cli.Failure(f"output={args.output}: cannot write it: {cli.error_summary(err)}") from None
    for path, reason in bad[:20]:
        print(f"  {path}: {reason}")
    if len(bad) > 20:
        print(f"  ... {len(bad) - 20} more")
    summary = f"{len(bad)} of {len(paths)} videos are unreadable; list written to {output}"
    print(summary)
    if bad:
        raise cli.Failure(summary)
    return 0
