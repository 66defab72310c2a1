"""softpool-eval: multi-view report files, unreadable videos, class-count checks, rebuilding the model."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

from softpool_video.train.checkpoint import load_model_from_checkpoint
from softpool_video.train.config import ConfigError, compose_config
from softpool_video.train.evaluate import evaluate_checkpoint
from softpool_video.train.trainer import train


@pytest.fixture(scope="module")
def trained(synthetic_root, tiny_overrides, tmp_path_factory):
    """A checkpoint after one short epoch (its accuracy does not matter here)."""
    out = tmp_path_factory.mktemp("eval_runs")
    cfg = compose_config("train", [*tiny_overrides(synthetic_root, out), "trainer.epochs=1", "logger=[]"])
    return train(cfg)


def _eval_config(checkpoint, *overrides):
    return compose_config("eval", [f"checkpoint={checkpoint}", "trainer.progress_bar=false", *overrides])


def test_eval_writes_the_report(trained, tmp_path):
    summary = evaluate_checkpoint(_eval_config(trained.best_checkpoint, f"output_dir={tmp_path / 'report'}"))
    result = summary.result
    assert result.num_videos == 8 and result.num_views == 16  # 8 test videos x 2 clips x 1 crop
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "eval.log",
        "per_class_accuracy.csv",
        "predictions.csv",
        "summary.json",
    ]
    data = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert data["video_top1"] == pytest.approx(result.video_top1)
    assert data["unreadable_videos"] == []
    assert int(result.confusion.sum()) == 8
    # the reported video accuracy is the diagonal of the confusion matrix
    assert result.video_top1 == pytest.approx(100.0 * int(result.confusion.diagonal().sum()) / 8)
    with (tmp_path / "report" / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert {row["num_views"] for row in rows} == {"2"}
    assert all(row["video"].endswith((".mp4", ".avi")) and row["top1"] for row in rows)
    assert sum(int(row["correct"]) for row in rows) == int(result.confusion.diagonal().sum())


def test_eval_in_bf16_on_cpu(trained, tmp_path):
    fp32 = evaluate_checkpoint(
        _eval_config(trained.best_checkpoint, f"output_dir={tmp_path / 'fp32'}")
    ).result
    bf16 = evaluate_checkpoint(
        _eval_config(trained.best_checkpoint, "trainer.precision=bf16", f"output_dir={tmp_path / 'bf16'}")
    ).result
    assert bf16.num_views == fp32.num_views == 16
    torch.testing.assert_close(bf16.video_scores, fp32.video_scores, atol=0.05, rtol=0)


def test_eval_reports_an_unreadable_video(trained, synthetic_root, tmp_path):
    root = tmp_path / "corrupt"
    shutil.copytree(synthetic_root, root)
    first_test = (root / "testlist01.txt").read_text().split()[0]
    (root / first_test).write_bytes(b"\x00not a video\x00" * 64)
    summary = evaluate_checkpoint(
        _eval_config(
            trained.best_checkpoint, f"+data_overrides.root={root}", f"output_dir={tmp_path / 'report'}"
        )
    )
    data = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [entry["path"] for entry in data["unreadable_videos"]] == [str(root / first_test)]
    assert data["unreadable_videos"][0]["error"]
    assert summary.result.num_videos == 7  # the unreadable video has no score
    assert data["settings"]["data_root"] == str(root)


def test_eval_rejects_data_with_another_class_count(trained, tmp_path):
    from softpool_video.data.synthetic import generate_synthetic_dataset

    root = generate_synthetic_dataset(
        tmp_path / "three", num_classes=3, videos_per_class=4, frames=12, size=32, kinetics=False
    )
    with pytest.raises(
        ConfigError, match=r"num_classes mismatch: checkpoint .* 4 classes, data split=test .* has 3"
    ):
        evaluate_checkpoint(_eval_config(trained.best_checkpoint, f"+data_overrides.root={root}"))


def test_load_model_from_checkpoint_rebuilds_the_trained_model(trained):
    model, config, class_names = load_model_from_checkpoint(trained.best_checkpoint)
    assert class_names == ["MoveLeft", "MoveRight", "MoveUp", "MoveDown"]
    assert not model.training
    assert config["data"]["num_clips"] == 2 and config["model"]["name"] == "r2plus1d_tiny"
    state = torch.load(trained.best_checkpoint, weights_only=True)["model"]
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 8, 48, 48)).shape == (1, 4)
