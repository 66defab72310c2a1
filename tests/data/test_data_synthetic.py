"""The synthetic motion dataset: deterministic, both layouts, decodable, classes defined by motion."""

from __future__ import annotations

import filecmp
import json
import time

import numpy as np
import pytest

from softpool_video.data import decode_clip, parse_kinetics_csv, parse_ucf101
from softpool_video.data.synthetic import (
    MOTIONS,
    SyntheticParams,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    kinetics_label,
    main,
    render_video,
)

SMALL = {
    "num_classes": 4,
    "videos_per_class": 6,
    "frames": 12,
    "size": 32,
    "fps": 8,
    "seed": 3,
    "clips_per_group": 2,
}


def video_files(root, kinetics=True):
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix in (".mp4", ".avi"))
    return files if kinetics else [f for f in files if f.parts[0] != "kinetics"]


def test_same_seed_same_bytes_other_seed_other_videos(small_synthetic, tmp_path):
    again = generate_synthetic_dataset(tmp_path / "again", **SMALL)
    files = video_files(small_synthetic)
    assert files == video_files(again)
    assert all(filecmp.cmp(small_synthetic / f, again / f, shallow=False) for f in files)
    for name in ("classInd.txt", "trainlist01.txt", "testlist03.txt", "kinetics/annotations/train.csv"):
        assert (small_synthetic / name).read_text() == (again / name).read_text()
    other = generate_synthetic_dataset(tmp_path / "other", **{**SMALL, "seed": 4, "kinetics": False})
    first = "MoveLeft/v_MoveLeft_g01_c01.mp4"
    assert not filecmp.cmp(small_synthetic / first, other / first, shallow=False)


def test_ucf101_layout_with_three_group_splits(small_synthetic):
    names = (small_synthetic / "classInd.txt").read_text().split("\n")
    assert names[:4] == ["1 MoveLeft", "2 MoveRight", "3 MoveUp", "4 MoveDown"]
    everything = None
    for split in (1, 2, 3):
        train = parse_ucf101(small_synthetic, small_synthetic, split, "train")
        test = parse_ucf101(small_synthetic, small_synthetic, split, "test")
        train_paths, test_paths = {r.path for r in train.records}, {r.path for r in test.records}
        assert not train_paths & test_paths
        everything = everything or train_paths | test_paths
        assert train_paths | test_paths == everything and len(everything) == 4 * 6
        # whole groups are held out: a test group never appears in training
        group = lambda p: p.name.split("_g")[1][:2]  # noqa: E731
        assert not {(p.parent, group(p)) for p in train_paths} & {(p.parent, group(p)) for p in test_paths}
        assert all(r.path.parent.name == train.class_names[r.label] for r in train.records + test.records)
        assert all(r.path.is_file() for r in train.records + test.records)
    suffixes = {p.suffix for p in everything}
    assert suffixes == {".mp4", ".avi"}


def test_kinetics_layout_matches_the_ucf_layout(small_synthetic):
    kinetics = small_synthetic / "kinetics"
    train = parse_kinetics_csv(kinetics / "annotations" / "train.csv", kinetics / "train")
    val = parse_kinetics_csv(kinetics / "annotations" / "validate.csv", kinetics / "val", train.class_names)
    ucf_train = parse_ucf101(small_synthetic, small_synthetic, 1, "train")
    ucf_test = parse_ucf101(small_synthetic, small_synthetic, 1, "test")
    assert train.class_names == sorted(kinetics_label(n) for n in MOTIONS[:4])
    assert len(train.records) == len(ucf_train.records) and len(val.records) == len(ucf_test.records)
    assert all(r.path.is_file() for r in train.records + val.records)
    # same videos (hard links or copies): identical bytes, same class name
    for kinetics_record, ucf_record in zip(val.records, ucf_test.records):
        assert filecmp.cmp(kinetics_record.path, ucf_record.path, shallow=False)
        assert train.class_names[kinetics_record.label] == kinetics_label(
            ucf_test.class_names[ucf_record.label]
        )
    assert kinetics_label("RotateCCW") == "rotate ccw" and kinetics_label("MoveLeft") == "move left"


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_videos_decode_with_the_advertised_shape(small_synthetic, backend):
    info = json.loads((small_synthetic / "synthetic.json").read_text())
    assert info["params"]["frames"] == 12 and info["num_videos"] == 24
    for relative in ["MoveUp/v_MoveUp_g01_c01.mp4", "MoveUp/v_MoveUp_g03_c01.avi"]:
        clip = decode_clip(small_synthetic / relative, backend=backend)
        assert clip.frames.shape == (12, 32, 32, 3)
        np.testing.assert_allclose(clip.times.numpy(), np.arange(12) / 8, atol=1e-3)


def actor_masks(params: SyntheticParams, label: int, group: int, clip: int = 1):
    """Frames of a video and the exact per-frame mask of its actor (frames minus actor-less frames)."""
    frames = render_video(params, label, group, clip).astype(np.int16)
    background = render_video(params, label, group, clip, draw_actor=False).astype(np.int16)
    return frames, np.abs(frames - background).sum(-1) > 0


def actor_track(masks: np.ndarray) -> np.ndarray:
    """(T, 3): centroid x, y and area of the actor in each frame."""
    tracks = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        tracks.append((xs.mean(), ys.mean(), mask.sum()))
    return np.array(tracks)


@pytest.mark.parametrize("label", range(len(MOTIONS)))
def test_classes_are_defined_by_motion(label):
    """The actor moves as its class says, in every scene."""
    params = SyntheticParams(num_classes=len(MOTIONS), frames=20, size=64, seed=11)
    motion = MOTIONS[label]
    for group in (1, 2, 3, 4):
        _, masks = actor_masks(params, label, group)
        x, y, area = actor_track(masks).T
        dx, dy = x[-1] - x[0], y[-1] - y[0]
        if motion == "MoveLeft":
            assert dx < -10 and abs(dy) < 4
        elif motion == "MoveRight":
            assert dx > 10 and abs(dy) < 4
        elif motion == "MoveUp":
            assert dy < -10 and abs(dx) < 4
        elif motion == "MoveDown":
            assert dy > 10 and abs(dx) < 4
        elif motion == "Grow":
            assert area[-1] > 2.5 * area[0] and np.all(np.diff(area) > -10)
        elif motion == "Shrink":
            assert area[0] > 2.5 * area[-1] and np.all(np.diff(area) < 10)
        elif motion.startswith("Bounce"):
            along, across = (x, y) if motion == "BounceHorizontal" else (y, x)
            steps = np.diff(along)
            assert np.ptp(along) > 6 and np.ptp(across) < 4
            assert (steps > 0.3).any() and (steps < -0.3).any()  # goes both ways
        else:  # rotations turn in place (the centroid of the irregular polygon wobbles a little)
            assert abs(dx) < 9 and abs(dy) < 9


def test_rotation_direction():
    """RotateCW turns clockwise on screen (image y points down), RotateCCW the other way."""
    params = SyntheticParams(frames=20, size=64, seed=5)
    for group in (1, 2, 3):
        for label, sign in ((MOTIONS.index("RotateCW"), 1), (MOTIONS.index("RotateCCW"), -1)):
            frames, masks = actor_masks(params, label, group)
            angles = []
            for frame, mask in zip(frames[::4], masks[::4]):
                ys, xs = np.nonzero(mask)
                centre = np.array([xs.mean(), ys.mean()])
                # drop the anti-aliased rim, whose colours mix actor and background
                inner = mask.copy()
                inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
                ys, xs = np.nonzero(inner)
                colours = frame[inner]
                # the dot has the complementary colour of the polygon's fill
                fill = np.median(colours, axis=0)
                dot = np.abs(colours - fill).sum(-1) > 150
                dot_xy = np.stack([xs[dot], ys[dot]], 1).mean(0)
                angles.append(np.arctan2(*(dot_xy - centre)[::-1]))
            turns = np.diff(np.unwrap(angles))
            assert np.all(np.sign(turns) == sign), (MOTIONS[label], turns)
            assert abs(np.unwrap(angles)[-1] - angles[0]) > np.deg2rad(45)


def test_a_single_frame_does_not_tell_the_class():
    """Appearance is drawn independently of the class: same scene seed -> same look for any motion."""
    params = SyntheticParams(frames=20, size=64, seed=2)
    looks = []
    for label in range(params.num_classes):
        frames, masks = actor_masks(params, label, group=1)
        colours = frames[masks]
        looks.append(np.median(colours, axis=0))
    # the actor of group 1 differs between classes only as much as random scenes differ
    spread = np.ptp(np.array(looks), axis=0).max()
    assert spread > 30  # scenes are random per (class, group) ...
    sizes = [actor_track(actor_masks(params, label, group=2)[1])[:, 2].mean() for label in range(8)]
    assert max(sizes) < 3 * min(sizes)  # ... and sizes overlap between classes


def test_cli_writes_refuses_to_clobber_and_overwrites(tmp_path, capsys):
    root = tmp_path / "cli"
    args = [str(root), "num_classes=2", "videos_per_class=4", "frames=6", "size=32", "kinetics=false"]
    assert main(args) == 0
    assert "wrote 8 videos of 2 classes" in capsys.readouterr().out
    assert not (root / "kinetics").exists()
    assert main(args) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main([*args, "overwrite=true", "seed=9"]) == 0
    assert json.loads((root / "synthetic.json").read_text())["params"]["seed"] == 9
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("do not delete")
    assert main([str(tmp_path / "precious"), "overwrite=true", "num_classes=2", "videos_per_class=2"]) == 2
    assert (tmp_path / "precious" / "thesis.txt").exists()
    assert not list(tmp_path.glob(".*partial*"))  # no staging directory left behind


def test_ensure_reuses_matching_and_refuses_different(tmp_path):
    root = ensure_synthetic_dataset(tmp_path / "set", **SMALL)
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    assert ensure_synthetic_dataset(root, **SMALL) == root
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="made with"):
        ensure_synthetic_dataset(root, **{**SMALL, "frames": 13})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"num_classes": 11}, "num_classes"),
        ({"videos_per_class": 3}, "videos_per_class"),
        ({"size": 33}, "even"),
        ({"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_invalid_parameters(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        generate_synthetic_dataset(tmp_path / "x", **{**SMALL, **override})


@pytest.mark.slow
def test_default_dataset_generates_well_under_a_minute(tmp_path):
    started = time.perf_counter()
    root = generate_synthetic_dataset(tmp_path / "default")
    elapsed = time.perf_counter() - started
    assert (
        len(video_files(root, kinetics=False))
        == SyntheticParams().num_classes * SyntheticParams().videos_per_class
    )
    assert elapsed < 45, elapsed
