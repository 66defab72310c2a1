"""Find unreadable videos before training: decode every frame of every file, in parallel.

``check_videos(paths)`` returns ``(path, reason)`` for each file that cannot be opened, fails to
decode, or holds clearly fewer frames than its header promises (truncated). Command line:
``python datasets/check_videos.py ROOT_OR_LIST [--workers N] [--output unreadable.txt]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from softpool_video.data.annotations import VIDEO_EXTENSIONS, iter_video_files
from softpool_video.data.decoders import TRUNCATION_TOLERANCE_FRAMES, VideoDecodeError, open_video


def check_video(path: str | Path, backend: str = "pyav") -> str | None:
    """``None`` if every frame of ``path`` decodes, else why not."""
    try:
        with open_video(path, backend=backend) as video:
            expected = video.info.num_frames
            decoded = video.count_decodable_frames()
    except VideoDecodeError as err:
        return err.reason
    if decoded == 0:
        return "no frame decodes"
    if decoded < expected - TRUNCATION_TOLERANCE_FRAMES:
        return f"truncated: {decoded} of the {expected} frames in its header decode"
    return None


def _check_one(job: tuple[str, str]) -> tuple[str, str | None]:
    path, backend = job
    return path, check_video(path, backend)


def check_videos(
    paths: Iterable[str | Path], backend: str = "pyav", workers: int = 2, progress: bool = False
) -> list[tuple[str, str]]:
    """``(path, reason)`` of every unreadable video among ``paths``, in input order."""
    from tqdm import tqdm

    jobs = [(str(p), backend) for p in paths]
    results: dict[str, str | None] = {}
    with tqdm(total=len(jobs), desc="checking videos", unit="video", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                path, reason = _check_one(job)
                results[path] = reason
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for path, reason in pool.map(_check_one, jobs, chunksize=4):
                    results[path] = reason
                    bar.update()
    return [(path, reason) for path, reason in results.items() if reason is not None]


def _collect(sources: Sequence[str]) -> list[Path]:
    """Video files from directories (recursive) and list files (first field of each line)."""
    paths: list[Path] = []
    for source in sources:
        source_path = Path(source)
        if source_path.is_dir():
            paths += list(iter_video_files(source_path, VIDEO_EXTENSIONS))
        elif source_path.is_file() and source_path.suffix.lower() not in VIDEO_EXTENSIONS:
            for line in source_path.read_text().splitlines():
                field = line.split(",")[0].strip() if "," in line else line.strip().rsplit(" ", 1)[0]
                if field and not field.startswith("#"):
                    path = Path(field)
                    paths.append(path if path.is_absolute() else source_path.parent / path)
        else:
            paths.append(source_path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``check_videos.py SOURCE... [--backend pyav] [--workers N] [--output FILE]``; exit 1 if any is bad."""
    parser = argparse.ArgumentParser(
        prog="check_videos.py", description="Decode every frame of every video and list the unreadable ones."
    )
    parser.add_argument(
        "sources", nargs="+", help="video directories (searched recursively), list files or videos"
    )
    parser.add_argument("--backend", default="pyav", choices=["pyav", "decord", "torchcodec"])
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default: %(default)s)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("unreadable_videos.txt"),
        help="where to write 'path<TAB>reason' lines (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    paths = _collect(args.sources)
    if not paths:
        print(f"check_videos: no video files in {' '.join(args.sources)}", file=sys.stderr)
        return 2
    bad = check_videos(paths, args.backend, args.workers, progress=sys.stderr.isatty())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(f"{path}\t{reason}\n" for path, reason in bad))
    print(f"{len(bad)} of {len(paths)} videos are unreadable; list written to {args.output}")
    return 1 if bad else 0
