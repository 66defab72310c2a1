"""Evaluation semantics: a video with unreadable views is excluded and listed (eval, validation,
predict, summary.json); an unlabelled split (the Kinetics test CSV) gives predictions, no metrics."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from softpool_video.data import VideoDecodeError, open_video
from softpool_video.predict import Predictor
from softpool_video.train.config import compose_config
from softpool_video.train.evaluate import UNREADABLE_POLICY, evaluate_checkpoint
from softpool_video.train.trainer import train


@pytest.fixture(scope="module")
def trained(synthetic_root, tiny_overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("semantics_runs")
    cfg = compose_config("train", [*tiny_overrides(synthetic_root, out), "trainer.epochs=1", "logger=[]"])
    return train(cfg)


def _eval(checkpoint, output, *overrides):
    cfg = compose_config(
        "eval", [f"checkpoint={checkpoint}", "trainer.progress_bar=false", f"output_dir={output}", *overrides]
    )
    return evaluate_checkpoint(cfg)


def damage_after_first_gop(path: Path) -> None:
    """Rewrite ``path`` with its index in front, then overwrite with noise the data of every packet
    the decoder does not need to hand out the first GOP (the frames before the second keyframe):
    the file opens and its first GOP decodes, the rest does not."""
    remuxed = path.with_name("remuxed.mp4")
    with (
        av.open(str(path)) as source,
        av.open(str(remuxed), "w", options={"movflags": "faststart"}) as target,
    ):
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    with av.open(str(remuxed)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        second_keyframe_pts = [p.pts for p in packets if p.is_keyframe][1]
        first_gop = sum(p.pts < second_keyframe_pts for p in packets)
        spans, shown = [], 0
        for packet in packets:  # decode until the whole first GOP has come out
            spans.append((packet.pos, packet.size))
            shown += sum(frame.pts < second_keyframe_pts for frame in packet.decode())
            if shown == first_gop:
                break
        damaged = [(p.pos, p.size) for p in packets[len(spans) :]]
    data = bytearray(remuxed.read_bytes())
    rng = np.random.default_rng(0)
    for position, size in damaged:
        data[position : position + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    remuxed.unlink()


# 2 clips of 8 consecutive frames of the 16-frame test videos: clip 0 = frames 0-7, clip 1 = 8-15
VIEWS = ["+data_overrides.sampling_rate=1", "+data_overrides.num_clips=2"]


@pytest.fixture(scope="module")
def partly_readable(synthetic_root, tmp_path_factory):
    """A copy of the dataset whose first .mp4 test video has a readable first clip only."""
    root = tmp_path_factory.mktemp("partial") / "data"
    shutil.copytree(synthetic_root, root)
    victim = root / next(p for p in (root / "testlist01.txt").read_text().split() if p.endswith(".mp4"))
    damage_after_first_gop(victim)  # the synthetic videos have a keyframe every 8 frames
    with open_video(victim) as video:
        assert video.info.num_frames == 16
        video.decode(range(8))  # clip 0 decodes
        with pytest.raises(VideoDecodeError):
            video.decode(range(8, 16))  # clip 1 does not
    return root, victim


def test_a_partly_readable_video_is_excluded_from_eval_and_listed(trained, partly_readable, tmp_path):
    root, victim = partly_readable
    summary = _eval(trained.best_checkpoint, tmp_path / "report", f"+data_overrides.root={root}", *VIEWS)
    data = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [entry["path"] for entry in data["unreadable_videos"]] == [str(victim)]
    assert data["unreadable_policy"] == UNREADABLE_POLICY
    result = summary.result
    assert result.num_videos == 7 and result.num_labelled_videos == 7  # 8 test videos, one excluded
    assert result.num_views == 14  # 2 views each: none of the damaged video's
    assert int(result.confusion.sum()) == 7
    with (tmp_path / "report" / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert str(victim) not in {row["video"] for row in rows}
    assert {row["num_views"] for row in rows} == {"2"}


def test_predict_gives_the_partly_readable_video_no_scores(trained, partly_readable):
    _, victim = partly_readable
    predictor = Predictor(trained.best_checkpoint, device="cpu", num_clips=2, num_crops=1)
    prediction = predictor.predict(victim)
    assert not prediction.ok and prediction.probabilities == [] and prediction.num_views == 0
    assert prediction.error
    # one clip only (the centred one covers frames 4-11): still unreadable, not half-scored
    assert not Predictor(trained.best_checkpoint, device="cpu", num_clips=1).predict(victim).ok


def make_kinetics_test_split(synthetic_root: Path, root: Path) -> list[Path]:
    """A Kinetics layout whose test CSV has no label column (as the original Kinetics-400's)."""
    (root / "annotations").mkdir(parents=True)
    classes = [
        line.split(maxsplit=1)[1] for line in (synthetic_root / "classInd.txt").read_text().splitlines()
    ]
    rows = [f"{name},id{k:03d},0,10,train" for k, name in enumerate(classes)]
    (root / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n" + "\n".join(rows)
    )
    test_videos = (synthetic_root / "testlist01.txt").read_text().split()[:3]
    lines, copies = ["youtube_id,time_start,time_end,split"], []
    for k, relative in enumerate(test_videos):
        copy = root / "test" / f"vid{k:03d}_{k * 10:06d}_{k * 10 + 10:06d}{Path(relative).suffix}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synthetic_root / relative, copy)
        lines.append(f"vid{k:03d},{k * 10},{k * 10 + 10},test")
        copies.append(copy)
    (root / "annotations" / "test.csv").write_text("\n".join(lines) + "\n")
    return copies


def test_an_unlabelled_split_gives_predictions_and_no_metrics(trained, synthetic_root, tmp_path):
    copies = make_kinetics_test_split(synthetic_root, tmp_path / "k")
    report = tmp_path / "report"
    summary = _eval(
        trained.best_checkpoint,
        report,
        "split=test",
        f"+data_overrides.root={tmp_path / 'k'}",
        "+data_overrides.format=kinetics",
        "+data_overrides.annotation_dir=annotations",
        "+data_overrides.split_files.train=train.csv",
        "+data_overrides.split_files.test=test.csv",
        "+data_overrides.video_dirs.test=test",
    )
    result = summary.result
    assert result.num_videos == 3 and not result.labelled and result.metrics() == {}
    data = json.loads((report / "summary.json").read_text())
    assert data["video_top1"] is None and data["loss"] is None and data["num_labelled_videos"] == 0
    assert "no labels" in data["metrics_note"]
    assert sorted(p.name for p in report.iterdir()) == ["eval.log", "predictions.csv", "summary.json"]
    with (report / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["video"] for row in rows) == sorted(str(p) for p in copies)
    assert all(row["label"] == "" and row["correct"] == "" and row["top1"] for row in rows)
    assert all(float(row["top1_score"]) > 0 for row in rows)


def test_predict_classifies_vfr_long_audio_and_packed_bframe_files(trained, tmp_path):
    """Valid real-world files are not refused (they were: 'no frame could be decoded')."""
    from softpool_video.data.testing import write_variants

    variants = write_variants(tmp_path / "variants", count=24)
    predictor = Predictor(trained.best_checkpoint, device="cpu", num_clips=2, num_crops=1)
    names = ["mkv_vfr", "webm_audio_longer", "avi_xvid_packed_bframes", "mkv_starts_at_1.5s"]
    for prediction in predictor.predict_many([variants[name].path for name in names]):
        assert prediction.ok, prediction.error
        assert prediction.num_views == 2 and sum(prediction.probabilities) == pytest.approx(1.0)
