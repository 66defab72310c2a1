"""Annotation parsers: turn a dataset's official lists into ``VideoRecord`` lists and class names.

Every parser returns an ``Annotations`` (records + class names) and never touches video contents;
whether the files exist is checked once, by ``VideoClipDataset`` (see ``skip_missing``).

Supported layouts (``datasets/README.md`` shows each one on disk):

- Kinetics-400/600/700: official CSVs ``label,youtube_id,time_start,time_end,split[,is_cc]``, video
  files named ``{youtube_id}_{time_start:06d}_{time_end:06d}.<any extension>``, flat or in
  folder-per-class sub-directories.
- UCF-101: ``classInd.txt`` + ``trainlist0{1,2,3}.txt`` / ``testlist0{1,2,3}.txt``.
- HMDB-51: ``<class>_test_split{1,2,3}.txt`` (``1`` = train, ``2`` = test, ``0`` = unused).
- Generic: "path label" lists (comma- or whitespace-separated, optional start/end seconds) and
  folder-per-class directories.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from softpool_video.constants import SPLITS, VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

# Containers we treat as videos when scanning directories or resolving a listed file whose
# extension changed (e.g. UCF-101 .avi re-encoded to .mp4 by datasets/prepare_ucf101.py):
# VIDEO_EXTENSIONS, from softpool_video.constants.
SUBSETS = SPLITS


class AnnotationError(ValueError):
    """An annotation file is malformed or inconsistent; the message names the file and line."""


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video.

    ``start_sec``/``end_sec`` restrict clip sampling to a time window of an untrimmed video
    (``None`` = the whole file). Kinetics times refer to the original YouTube video and are not
    used: the downloaded files are already trimmed.
    """

    path: Path
    label: int
    start_sec: float | None = None
    end_sec: float | None = None


@dataclass
class Annotations:
    """The records of one split and the class names their ``label`` indexes."""

    records: list[VideoRecord]
    class_names: list[str]
    source: str  # where they came from, for messages

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _check_subset(subset: str) -> str:
    if subset not in SUBSETS:
        raise ValueError(f"split must be one of {SUBSETS}, got {subset!r}")
    return subset


def _existing_file(path: Path, argument: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: annotation file {path} does not exist")
    return path


def resolve_video_path(path: Path) -> Path:
    """``path`` if it exists, else a sibling with the same stem and another video extension.

    Lets lists that name ``x.avi`` find ``x.mp4`` after re-encoding. Returns ``path`` unchanged
    when nothing matches, so the caller reports it as missing under the listed name.
    """
    if path.exists():
        return path
    for extension in VIDEO_EXTENSIONS:
        candidate = path.with_suffix(extension)
        if candidate.exists():
            return candidate
    return path


def iter_video_files(directory: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Iterator[Path]:
    """Every video file under ``directory``, recursively, in sorted order (one ``os.scandir`` walk)."""
    extensions = tuple(e.lower() for e in extensions)
    stack = [Path(directory)]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as err:
            logger.warning("cannot list %s: %s", current, err)
            continue
        subdirs = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=True):
                subdirs.append(Path(entry.path))
            elif entry.name.lower().endswith(extensions):
                yield Path(entry.path)
        stack.extend(reversed(subdirs))


def index_video_files(directory: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> dict[str, Path]:
    """Recursively map file stem -> path for every video file under ``directory``.

    Fast enough for 10^5 files. When a stem occurs twice (the same clip in two class folders),
    the first in sorted order wins and a warning is logged.
    """
    index: dict[str, Path] = {}
    duplicates = 0
    for path in iter_video_files(directory, extensions):
        stem = path.name.rsplit(".", 1)[0]
        if stem in index:
            duplicates += 1
        else:
            index[stem] = path
    if duplicates:
        logger.warning(
            "%s: %d video files share a name with another one; the first is used", directory, duplicates
        )
    return index


def read_class_names(path: str | Path) -> list[str]:
    """Class names, one per line, in index order.

    Accepts plain ``name`` lines and UCF-101 ``classInd.txt`` style ``<index> <name>`` lines
    (indices 0- or 1-based; they must be consecutive).
    """
    path = _existing_file(Path(path), "classes_file")
    names: list[str] = []
    indices: list[int] = []
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        first, _, rest = line.partition(" ")
        if first.isdigit() and rest.strip():
            indices.append(int(first))
            names.append(rest.strip())
        else:
            names.append(line)
    if not names:
        raise AnnotationError(f"{path}: no class names")
    if indices:
        if len(indices) != len(names):
            raise AnnotationError(f"{path}: mixes '<index> <name>' lines with plain names")
        base = min(indices)
        order = sorted(range(len(names)), key=lambda k: indices[k])
        if [indices[k] for k in order] != list(range(base, base + len(names))) or base not in (0, 1):
            raise AnnotationError(
                f"{path}: class indices must be consecutive from 0 or 1, got {indices[:5]}..."
            )
        names = [names[k] for k in order]
    if len(set(names)) != len(names):
        raise AnnotationError(f"{path}: duplicate class names")
    return names


# --------------------------------------------------------------------------------------------
# Kinetics
# --------------------------------------------------------------------------------------------


def kinetics_file_stem(youtube_id: str, time_start: float, time_end: float) -> str:
    """The official clip file name without extension: ``{youtube_id}_{start:06d}_{end:06d}``."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}"


def _read_kinetics_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        needed = {"youtube_id", "time_start", "time_end"}
        if not needed <= columns:
            raise AnnotationError(
                f"{csv_path}: not a Kinetics CSV, columns {sorted(columns)} lack {sorted(needed - columns)} "
                "(expected label,youtube_id,time_start,time_end,split)"
            )
        return list(reader)


def kinetics_class_names(csv_path: str | Path) -> list[str]:
    """Sorted label set of a Kinetics CSV (use the train CSV so every split shares the indices)."""
    rows = _read_kinetics_rows(_existing_file(Path(csv_path), "split_files.train"))
    labels = sorted({row["label"].strip() for row in rows if row.get("label")})
    if not labels:
        raise AnnotationError(f"{csv_path}: no labels; pass a classes file (data.classes_file)")
    return labels


def parse_kinetics_csv(
    csv_path: str | Path,
    video_dir: str | Path,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> Annotations:
    """Records of one official Kinetics CSV.

    Args:
        csv_path: ``train.csv``/``validate.csv``/``test.csv`` (Kinetics-400/600/700 share the format).
        video_dir: directory holding the split's clips, flat or folder-per-class (searched recursively).
        class_names: index order of the labels; default the sorted labels of this CSV. Pass the
            train CSV's classes for val/test so indices agree.

    Rows without a label (the original Kinetics-400 test CSV) get label ``-1``.
    Files are matched by ``{youtube_id}_{start:06d}_{end:06d}`` whatever their extension; rows
    with no file get the expected ``.mp4`` path and are reported missing by the dataset.
    """
    csv_path = _existing_file(Path(csv_path), "split_files")
    rows = _read_kinetics_rows(csv_path)
    if class_names is None:
        class_names = sorted({row["label"].strip() for row in rows if row.get("label")})
    class_to_index = {name: k for k, name in enumerate(class_names)}
    video_dir = Path(video_dir)
    files = index_video_files(video_dir, extensions) if video_dir.is_dir() else {}
    records: list[VideoRecord] = []
    unlabelled = 0
    for line_number, row in enumerate(rows, 2):  # line 1 is the header
        try:
            stem = kinetics_file_stem(row["youtube_id"].strip(), row["time_start"], row["time_end"])
        except (TypeError, ValueError) as err:
            raise AnnotationError(f"{csv_path}:{line_number}: bad time_start/time_end ({err})") from err
        label_name = (row.get("label") or "").strip()
        if label_name:
            if label_name not in class_to_index:
                raise AnnotationError(
                    f"{csv_path}:{line_number}: label {label_name!r} is not among the "
                    f"{len(class_names)} classes"
                )
            label = class_to_index[label_name]
        else:
            label, unlabelled = -1, unlabelled + 1
        path = files.get(stem)
        if path is None:
            subdir = label_name if label_name else ""
            path = video_dir / subdir / f"{stem}.mp4"
        records.append(VideoRecord(path, label))
    if unlabelled:
        logger.warning("%s: %d rows have no label; they get label -1", csv_path, unlabelled)
    return Annotations(records, list(class_names), str(csv_path))


# --------------------------------------------------------------------------------------------
# UCF-101
# --------------------------------------------------------------------------------------------


def _check_split_number(split: int, argument: str = "split") -> int:
    if str(split) not in ("1", "2", "3"):
        raise ValueError(f"{argument} must be 1, 2 or 3 (the official train/test splits), got {split!r}")
    return int(split)


def parse_ucf101(
    annotation_dir: str | Path, video_dir: str | Path, split: int = 1, subset: str = "train"
) -> Annotations:
    """Records of UCF-101 ``trainlist0{split}.txt`` (subset ``train``) or ``testlist0{split}.txt``.

    Class indices follow ``classInd.txt`` (1-based there, 0-based here). Train lines carry the
    label (``Class/v_Class_g08_c01.avi 1``), test lines do not: the class is the folder name,
    matched case-insensitively (the official lists spell ``HandstandPushups`` both ways).
    """
    split = _check_split_number(split)
    subset = _check_subset(subset)
    annotation_dir, video_dir = Path(annotation_dir), Path(video_dir)
    class_names = read_class_names(annotation_dir / "classInd.txt")
    by_lower = {name.lower(): k for k, name in enumerate(class_names)}
    list_path = annotation_dir / f"{'trainlist' if subset == 'train' else 'testlist'}{split:02d}.txt"
    _existing_file(list_path, "split")
    records = []
    for line_number, raw in enumerate(list_path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        relative = parts[0].replace("\\", "/")
        folder = relative.split("/", 1)[0] if "/" in relative else None
        if len(parts) > 1:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(class_names):
                raise AnnotationError(
                    f"{list_path}:{line_number}: label {parts[1]!r} is not in 1..{len(class_names)}"
                )
            label = int(parts[1]) - 1
            if folder is not None and folder.lower() in by_lower and by_lower[folder.lower()] != label:
                raise AnnotationError(
                    f"{list_path}:{line_number}: label {parts[1]} ({class_names[label]}) "
                    f"contradicts folder {folder!r}"
                )
        elif folder is not None and folder.lower() in by_lower:
            label = by_lower[folder.lower()]
        else:
            raise AnnotationError(f"{list_path}:{line_number}: cannot tell the class of {relative!r}")
        records.append(VideoRecord(resolve_video_path(video_dir / relative), label))
    if not records:
        raise AnnotationError(f"{list_path}: no videos listed")
    return Annotations(records, class_names, str(list_path))


# --------------------------------------------------------------------------------------------
# HMDB-51
# --------------------------------------------------------------------------------------------

_HMDB_SPLIT_FILE = re.compile(r"^(?P<name>.+)_test_split(?P<split>[123])\.txt$")


def hmdb51_split_file_class(path: str | Path) -> tuple[str, int] | None:
    """``(class name, split number)`` of an HMDB-51 split file name, ``None`` for other names."""
    match = _HMDB_SPLIT_FILE.match(Path(path).name)
    return (match["name"], int(match["split"])) if match else None


def read_hmdb51_split_file(list_path: str | Path) -> list[tuple[str, str]]:
    """``(video file name, id)`` of every line of ``<class>_test_split<N>.txt`` (``id`` 1 = train,
    2 = test, 0 = unused). Names are taken verbatim: HMDB-51 has files starting with ``#``."""
    list_path = _existing_file(Path(list_path), "split_files")
    entries = []
    for line_number, raw in enumerate(list_path.read_text(encoding="utf-8-sig").splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise AnnotationError(
                f"{list_path}:{line_number}: expected '<video> <0|1|2>', got {raw.strip()!r}"
            )
        entries.append((parts[0], parts[1]))
    return entries


def parse_hmdb51(
    annotation_dir: str | Path, video_dir: str | Path, split: int = 1, subset: str = "train"
) -> Annotations:
    """Records of HMDB-51 split ``split``: ``<class>_test_split{split}.txt`` lines ``video.avi id``.

    ``id`` 1 = train, 2 = test (used for both ``val`` and ``test``), 0 = unused. Classes are the
    sorted names of the split files; videos live in ``video_dir/<class>/<video>``.
    """
    split = _check_split_number(split)
    subset = _check_subset(subset)
    annotation_dir, video_dir = Path(annotation_dir), Path(video_dir)
    if not annotation_dir.is_dir():
        raise FileNotFoundError(f"annotation_dir: {annotation_dir} is not a directory of HMDB-51 split files")
    split_files = {}
    for entry in sorted(annotation_dir.iterdir()):
        found = hmdb51_split_file_class(entry)
        if found and found[1] == split:
            split_files[found[0]] = entry
    if not split_files:
        raise FileNotFoundError(
            f"annotation_dir: no '<class>_test_split{split}.txt' files in {annotation_dir}"
        )
    class_names = sorted(split_files)
    wanted = "1" if subset == "train" else "2"
    records = []
    for label, name in enumerate(class_names):
        for video, group in read_hmdb51_split_file(split_files[name]):
            if group == wanted:
                records.append(VideoRecord(resolve_video_path(video_dir / name / video), label))
    return Annotations(records, class_names, f"{annotation_dir}/*_test_split{split}.txt")


# --------------------------------------------------------------------------------------------
# Generic lists and folders
# --------------------------------------------------------------------------------------------


def _split_list_line(line: str) -> list[str]:
    if "," in line:
        return next(csv.reader([line]))
    # "path label": the label is the last field, so paths may contain spaces
    head, _, tail = line.rpartition(" ")
    return [head.strip(), tail.strip()] if head.strip() else [tail.strip()]


def parse_path_label_list(
    list_path: str | Path, root: str | Path, class_names: Sequence[str] | None = None
) -> Annotations:
    """Records of a generic list: ``path label`` or ``path,label[,start_sec,end_sec]`` per line.

    Paths are relative to ``root`` (absolute ones are kept). Labels are integers (class names
    default to ``"0".."N-1"``) or class names (indexed by ``class_names``, default sorted). A first
    line whose label field reads ``label`` is a header. ``#`` starts a comment line.
    """
    list_path = _existing_file(Path(list_path), "split_files")
    root = Path(root)
    rows: list[tuple[int, list[str]]] = []
    for line_number, raw in enumerate(list_path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in _split_list_line(line)]
        if not rows and len(fields) > 1 and fields[1].lower() == "label":
            continue  # header
        if len(fields) not in (2, 4) or not fields[0]:
            raise AnnotationError(
                f"{list_path}:{line_number}: expected 'path label' or "
                f"'path,label,start_sec,end_sec', got {line!r}"
            )
        rows.append((line_number, fields))
    if not rows:
        raise AnnotationError(f"{list_path}: no videos listed")
    integer_labels = all(re.fullmatch(r"-?\d+", fields[1]) for _, fields in rows)
    if class_names is None:
        if integer_labels:
            class_names = [str(k) for k in range(max(int(fields[1]) for _, fields in rows) + 1)]
        else:
            class_names = sorted({fields[1] for _, fields in rows})
    class_to_index = {name: k for k, name in enumerate(class_names)}
    records = []
    for line_number, fields in rows:
        if integer_labels:
            label = int(fields[1])
            if not 0 <= label < len(class_names):
                raise AnnotationError(
                    f"{list_path}:{line_number}: label {label} is not in 0..{len(class_names) - 1}"
                )
        elif fields[1] in class_to_index:
            label = class_to_index[fields[1]]
        else:
            raise AnnotationError(f"{list_path}:{line_number}: unknown class {fields[1]!r}")
        start = end = None
        if len(fields) == 4:
            try:
                start, end = float(fields[2]), float(fields[3])
            except ValueError as err:
                raise AnnotationError(f"{list_path}:{line_number}: bad start/end seconds ({err})") from err
            if not 0 <= start < end:
                raise AnnotationError(
                    f"{list_path}:{line_number}: need 0 <= start_sec < end_sec, got {start}, {end}"
                )
        path = Path(fields[0])
        records.append(
            VideoRecord(resolve_video_path(path if path.is_absolute() else root / path), label, start, end)
        )
    return Annotations(records, list(class_names), str(list_path))


def parse_folder_per_class(
    directory: str | Path,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> Annotations:
    """Records of ``directory/<class>/**/<video>``; classes default to the sorted folder names."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"video_dirs: {directory} is not a directory of class folders")
    folders = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if class_names is None:
        class_names = folders
    class_to_index = {name: k for k, name in enumerate(class_names)}
    unknown = [name for name in folders if name not in class_to_index]
    if unknown:
        raise AnnotationError(f"{directory}: folders {unknown[:5]} are not among the given class names")
    records = []
    for name in folders:
        records += [
            VideoRecord(path, class_to_index[name]) for path in iter_video_files(directory / name, extensions)
        ]
    if not records:
        raise AnnotationError(f"{directory}: no video files ({', '.join(extensions)}) in class folders")
    return Annotations(records, list(class_names), str(directory))
