"""Annotation parsers: Kinetics CSVs, UCF-101 and HMDB-51 splits, generic lists and folders.

Parsers never open videos, so empty placeholder files stand in for them here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from softpool_video.data import (
    AnnotationError,
    DataConfig,
    load_annotations,
    parse_folder_per_class,
    parse_hmdb51,
    parse_kinetics_csv,
    parse_path_label_list,
    parse_ucf101,
    read_class_names,
)
from softpool_video.data.annotations import kinetics_class_names, kinetics_file_stem


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ---------------------------------------------------------------------------------------------
# Kinetics
# ---------------------------------------------------------------------------------------------


def write_kinetics_csv(path: Path, rows, columns=("label", "youtube_id", "time_start", "time_end", "split")):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_kinetics_file_stem_matches_official_naming():
    assert kinetics_file_stem("---QUuC4vJs", 84, 94) == "---QUuC4vJs_000084_000094"
    assert kinetics_file_stem("abc", "7.0", "17.0") == "abc_000007_000017"


def test_kinetics_csv_flat_and_folder_layouts_any_extension(tmp_path):
    rows = [
        ("abseiling", "aaaaaaaaaaa", 10, 20, "train"),
        ("air drumming", "bbbbbbbbbbb", 0, 10, "train"),
        ("passing American football (in game)", "c-c_c-c_c-c", 100, 110, "train"),  # "_" in the id
        ("abseiling", "ddddddddddd", 5, 15, "train"),  # no file on disk
    ]
    csv_path = write_kinetics_csv(tmp_path / "annotations" / "train.csv", rows)
    videos = tmp_path / "train"
    flat = touch(videos / "aaaaaaaaaaa_000010_000020.mp4")  # flat layout
    in_folder = touch(videos / "air drumming" / "bbbbbbbbbbb_000000_000010.mkv")  # folder per class, .mkv
    webm = touch(videos / "passing American football (in game)" / "c-c_c-c_c-c_000100_000110.webm")
    touch(videos / "unrelated.txt")

    annotations = parse_kinetics_csv(csv_path, videos)
    assert annotations.class_names == ["abseiling", "air drumming", "passing American football (in game)"]
    paths = [r.path for r in annotations.records]
    labels = [r.label for r in annotations.records]
    assert paths[:3] == [flat, in_folder, webm]
    assert labels == [0, 1, 2, 0]
    # the missing clip gets its expected path so that the dataset can report it by name
    assert paths[3] == videos / "abseiling" / "ddddddddddd_000005_000015.mp4" and not paths[3].exists()
    # Kinetics times index the YouTube video; the files are already trimmed
    assert all(r.start_sec is None and r.end_sec is None for r in annotations.records)


def test_kinetics_val_uses_train_class_indices_and_unlabelled_rows(tmp_path, caplog):
    train = write_kinetics_csv(
        tmp_path / "train.csv", [("b", "x" * 11, 0, 10, "train"), ("a", "y" * 11, 0, 10, "train")]
    )
    val = write_kinetics_csv(tmp_path / "validate.csv", [("b", "z" * 11, 0, 10, "val")])
    names = kinetics_class_names(train)
    assert names == ["a", "b"]
    assert [r.label for r in parse_kinetics_csv(val, tmp_path / "val", names).records] == [1]
    test = write_kinetics_csv(
        tmp_path / "test.csv", [("q" * 11, 0, 10, "test")], ("youtube_id", "time_start", "time_end", "split")
    )
    with caplog.at_level("WARNING"):
        records = parse_kinetics_csv(test, tmp_path / "test", names).records
    assert [r.label for r in records] == [-1]
    assert "no label" in caplog.text


def test_kinetics_errors_name_the_file_and_line(tmp_path):
    bad_columns = write_kinetics_csv(tmp_path / "bad.csv", [("a", "b")], ("label", "id"))
    with pytest.raises(AnnotationError, match="bad.csv.*youtube_id"):
        parse_kinetics_csv(bad_columns, tmp_path)
    unknown = write_kinetics_csv(tmp_path / "val.csv", [("zebra", "x" * 11, 0, 10, "val")])
    with pytest.raises(AnnotationError, match=r"val.csv:2: label 'zebra'"):
        parse_kinetics_csv(unknown, tmp_path, ["abseiling"])
    bad_time = write_kinetics_csv(tmp_path / "t.csv", [("a", "x" * 11, "soon", 10, "val")])
    with pytest.raises(AnnotationError, match=r"t.csv:2: bad time_start"):
        parse_kinetics_csv(bad_time, tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        parse_kinetics_csv(tmp_path / "nope.csv", tmp_path)


def test_kinetics_through_config_finds_val_csv_alternative(tmp_path):
    write_kinetics_csv(
        tmp_path / "annotations" / "train.csv",
        [("a", "x" * 11, 0, 10, "train"), ("b", "y" * 11, 0, 10, "train")],
    )
    write_kinetics_csv(tmp_path / "annotations" / "val.csv", [("b", "z" * 11, 3, 13, "val")])
    touch(tmp_path / "val" / "b" / "zzzzzzzzzzz_000003_000013.mp4")
    cfg = {
        "format": "kinetics",
        "root": str(tmp_path),
        "annotation_dir": "annotations",
        "num_classes": 2,
        "split_files": {"train": "train.csv", "val": ["validate.csv", "val.csv"], "test": "test.csv"},
    }
    annotations = load_annotations(cfg, "val")
    assert [(r.path.name, r.label) for r in annotations.records] == [("zzzzzzzzzzz_000003_000013.mp4", 1)]
    with pytest.raises(FileNotFoundError, match=r"data.split_files.test.*test.csv"):
        load_annotations(cfg, "test")
    with pytest.raises(ValueError, match=r"data.num_classes=400 .* defines 2 classes"):
        load_annotations({**cfg, "num_classes": 400}, "val")


# ---------------------------------------------------------------------------------------------
# UCF-101
# ---------------------------------------------------------------------------------------------

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]
UCF_GROUPS = 25  # g01..g25; official split k tests on groups 7(k-1)+1 .. 7k


def make_ucf101(root: Path, clips_per_group: int = 2) -> dict[str, int]:
    """An official-looking UCF-101 tree (empty videos) with CRLF list files, as downloaded."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_bytes(
        "".join(f"{k + 1} {name}\r\n" for k, name in enumerate(UCF_CLASSES)).encode()
    )
    labels = {}
    for split in (1, 2, 3):
        test_groups = set(range(7 * (split - 1) + 1, 7 * split + 1))
        train_lines, test_lines = [], []
        for k, name in enumerate(UCF_CLASSES):
            # the official lists spell this class's files "HandStandPushups"
            file_name = "HandStandPushups" if name == "HandstandPushups" else name
            for group in range(1, UCF_GROUPS + 1):
                for clip in range(1, clips_per_group + 1):
                    relative = f"{name}/v_{file_name}_g{group:02d}_c{clip:02d}.avi"
                    labels[relative] = k
                    if split == 1:
                        touch(root / "UCF-101" / relative)
                    if group in test_groups:
                        test_lines.append(f"{relative}\r\n")
                    else:
                        train_lines.append(f"{relative} {k + 1}\r\n")
        (lists / f"trainlist{split:02d}.txt").write_text("".join(train_lines), newline="")
        (lists / f"testlist{split:02d}.txt").write_text("".join(test_lines), newline="")
    return labels


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_splits_are_disjoint_cover_everything_and_hold_out_groups(tmp_path, split):
    labels = make_ucf101(tmp_path)
    lists, videos = tmp_path / "ucfTrainTestlist", tmp_path / "UCF-101"
    train = parse_ucf101(lists, videos, split, "train")
    test = parse_ucf101(lists, videos, split, "test")
    assert train.class_names == test.class_names == UCF_CLASSES
    train_paths = {r.path for r in train.records}
    test_paths = {r.path for r in test.records}
    assert not train_paths & test_paths
    assert {p.relative_to(videos).as_posix() for p in train_paths | test_paths} == set(labels)
    test_groups = {int(p.name.split("_g")[1][:2]) for p in test_paths}
    assert test_groups == set(range(7 * (split - 1) + 1, 7 * split + 1))
    assert len(test.records) == 7 * 2 * len(UCF_CLASSES)
    # labels: from the number in trainlist, from the folder (case-insensitively) in testlist
    for record in train.records + test.records:
        assert record.label == labels[record.path.relative_to(videos).as_posix()]


def test_ucf101_val_and_test_both_use_testlist_and_split_is_checked(tmp_path):
    make_ucf101(tmp_path, clips_per_group=1)
    cfg = {
        "format": "ucf101",
        "root": str(tmp_path),
        "annotation_dir": "ucfTrainTestlist",
        "video_dir": "UCF-101",
        "split": 2,
        "num_classes": 3,
    }
    val, test = load_annotations(cfg, "val"), load_annotations(cfg, "test")
    assert [r.path for r in val.records] == [r.path for r in test.records]
    assert {int(r.path.name.split("_g")[1][:2]) for r in val.records} == set(range(8, 15))  # split 2 groups
    with pytest.raises(ValueError, match="data.split must be 1, 2 or 3"):
        load_annotations({**cfg, "split": 4}, "train")
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        parse_ucf101(tmp_path / "ucfTrainTestlist", tmp_path / "UCF-101", 0)


def test_ucf101_resolves_reencoded_extension_and_flags_contradictions(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 A\n2 B\n")
    touch(tmp_path / "v" / "A" / "v_A_g01_c01.mp4")  # re-encoded; the list still says .avi
    (lists / "trainlist01.txt").write_text("A/v_A_g01_c01.avi 1\n")
    (lists / "testlist01.txt").write_text("B/v_B_g01_c01.avi\n")
    record = parse_ucf101(lists, tmp_path / "v", 1, "train").records[0]
    assert record.path == tmp_path / "v" / "A" / "v_A_g01_c01.mp4"
    # a missing file keeps its listed name (reported as missing by the dataset)
    assert parse_ucf101(lists, tmp_path / "v", 1, "test").records[0].path.name == "v_B_g01_c01.avi"
    (lists / "trainlist01.txt").write_text("A/v_A_g01_c01.avi 2\n")
    with pytest.raises(AnnotationError, match=r"trainlist01.txt:1: label 2 \(B\) contradicts folder 'A'"):
        parse_ucf101(lists, tmp_path / "v", 1, "train")
    (lists / "trainlist01.txt").write_text("A/v_A_g01_c01.avi 7\n")
    with pytest.raises(AnnotationError, match=r"label '7' is not in 1..2"):
        parse_ucf101(lists, tmp_path / "v", 1, "train")


# ---------------------------------------------------------------------------------------------
# HMDB-51
# ---------------------------------------------------------------------------------------------


def test_hmdb51_split_ids_train_test_unused(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    videos = tmp_path / "hmdb51_org"
    for name in ("brush_hair", "cartwheel"):
        for split in (1, 2, 3):
            lines = []
            for k in range(6):
                video = f"{name}_clip{k}.avi"
                if split == 1:
                    touch(videos / name / video)
                lines.append(f"{video} {(k + split) % 3} \n")  # ids rotate with the split
            (splits / f"{name}_test_split{split}.txt").write_text("".join(lines))
    for split in (1, 2, 3):
        train = parse_hmdb51(splits, videos, split, "train")
        test = parse_hmdb51(splits, videos, split, "test")
        assert train.class_names == ["brush_hair", "cartwheel"]  # "_test_split" parsed off, underscores kept
        expected_train = {
            f"{n}_clip{k}.avi" for n in ("brush_hair", "cartwheel") for k in range(6) if (k + split) % 3 == 1
        }
        expected_test = {
            f"{n}_clip{k}.avi" for n in ("brush_hair", "cartwheel") for k in range(6) if (k + split) % 3 == 2
        }
        assert {r.path.name for r in train.records} == expected_train
        assert {r.path.name for r in test.records} == expected_test
        assert all(r.path.parent.name == train.class_names[r.label] for r in train.records + test.records)
        assert all(r.path.exists() for r in train.records + test.records)
    (splits / "cartwheel_test_split1.txt").write_text("x.avi 3\n")
    with pytest.raises(AnnotationError, match=r"cartwheel_test_split1.txt:1"):
        parse_hmdb51(splits, videos, 1, "train")
    with pytest.raises(FileNotFoundError, match="annotation_dir"):
        parse_hmdb51(tmp_path / "missing", videos, 1, "train")


# ---------------------------------------------------------------------------------------------
# Generic lists and folders
# ---------------------------------------------------------------------------------------------


def test_path_label_list_space_separated_with_spaces_in_paths(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("# comment\nclips/my video 1.mp4 2\nclips/b.avi 0\n\n/abs/c.mp4 1\n")
    annotations = parse_path_label_list(listing, tmp_path)
    assert annotations.class_names == ["0", "1", "2"]
    assert [(r.path, r.label) for r in annotations.records] == [
        (tmp_path / "clips" / "my video 1.mp4", 2),
        (tmp_path / "clips" / "b.avi", 0),
        (Path("/abs/c.mp4"), 1),
    ]


def test_path_label_list_csv_with_header_names_and_time_windows(tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text('path,label,start_sec,end_sec\na.mp4,walk,1.5,4\n"b, c.mp4",run,0,2.5\n')
    annotations = parse_path_label_list(listing, tmp_path)
    assert annotations.class_names == ["run", "walk"]
    first, second = annotations.records
    assert (first.path.name, first.label, first.start_sec, first.end_sec) == ("a.mp4", 1, 1.5, 4.0)
    assert (second.path.name, second.label) == ("b, c.mp4", 0)
    # val lists are indexed with the train list's classes
    val = tmp_path / "val.csv"
    val.write_text("x.mp4,walk\n")
    assert parse_path_label_list(val, tmp_path, annotations.class_names).records[0].label == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a.mp4\n", r"list.txt:1: expected 'path label'"),
        ("a.mp4,1,5,2\n", r"list.txt:1: need 0 <= start_sec < end_sec"),
        ("a.mp4,1,x,2\n", r"list.txt:1: bad start/end"),
        ("", "no videos listed"),
    ],
)
def test_path_label_list_errors_name_file_and_line(tmp_path, content, message):
    listing = tmp_path / "list.txt"
    listing.write_text(content)
    with pytest.raises(AnnotationError, match=message):
        parse_path_label_list(listing, tmp_path)


def test_path_label_list_label_out_of_range_of_given_classes(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.mp4 5\n")
    with pytest.raises(AnnotationError, match=r"label 5 is not in 0..1"):
        parse_path_label_list(listing, tmp_path, ["x", "y"])
    listing.write_text("a.mp4 zebra\n")
    with pytest.raises(AnnotationError, match="unknown class 'zebra'"):
        parse_path_label_list(listing, tmp_path, ["x", "y"])


def test_folder_per_class_and_config_split_dirs(tmp_path):
    for split in ("train", "val"):
        touch(tmp_path / split / "jump" / "a.mp4")
        touch(tmp_path / split / "run" / "nested" / "b.AVI")
        touch(tmp_path / split / "run" / "notes.txt")
    touch(tmp_path / "train" / "zzz_only_in_train" / "c.mkv")
    train = parse_folder_per_class(tmp_path / "train")
    assert train.class_names == ["jump", "run", "zzz_only_in_train"]
    assert [(r.path.relative_to(tmp_path / "train").as_posix(), r.label) for r in train.records] == [
        ("jump/a.mp4", 0),
        ("run/nested/b.AVI", 1),
        ("zzz_only_in_train/c.mkv", 2),
    ]
    # val keeps the train class indices even though a class has no val folder
    val = load_annotations({"format": "folder", "root": str(tmp_path)}, "val")
    assert val.class_names == train.class_names
    assert [r.label for r in val.records] == [0, 1]
    with pytest.raises(FileNotFoundError, match="video_dirs"):
        load_annotations({"format": "folder", "root": str(tmp_path)}, "test")


def test_read_class_names_formats(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("walk\nrun\n\n")
    assert read_class_names(plain) == ["walk", "run"]
    indexed = tmp_path / "classInd.txt"
    indexed.write_text("2 Run Fast\n1 Walk\n")
    assert read_class_names(indexed) == ["Walk", "Run Fast"]
    gap = tmp_path / "gap.txt"
    gap.write_text("1 a\n3 b\n")
    with pytest.raises(AnnotationError, match="consecutive"):
        read_class_names(gap)
    duplicate = tmp_path / "dup.txt"
    duplicate.write_text("a\na\n")
    with pytest.raises(AnnotationError, match="duplicate"):
        read_class_names(duplicate)


def test_csv_config_with_classes_file(tmp_path):
    (tmp_path / "classes.txt").write_text("walk\nrun\n")
    (tmp_path / "train.csv").write_text("a.mp4,run\n")
    annotations = load_annotations(
        DataConfig(format="csv", root=str(tmp_path), classes_file="classes.txt", num_classes=2), "train"
    )
    assert annotations.class_names == ["walk", "run"] and annotations.records[0].label == 1
