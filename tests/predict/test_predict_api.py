"""``softpool_video.Predictor``: real clips, multi-view settings, unreadable files, refused checkpoints."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

import softpool_video
from softpool_video.predict import Prediction, Predictor, find_videos, resolve_device
from softpool_video.train.checkpoint import CheckpointError


def assert_valid(prediction: Prediction, topk: int, class_names: list[str]) -> None:
    assert prediction.ok, prediction.error
    assert len(prediction.probabilities) == len(class_names)
    assert all(0.0 <= p <= 1.0 for p in prediction.probabilities)
    assert math.isclose(sum(prediction.probabilities), 1.0, abs_tol=1e-6)
    assert len(prediction.topk) == topk
    labels = [label for label, _ in prediction.topk]
    assert set(labels) <= set(class_names) and len(set(labels)) == topk
    values = [p for _, p in prediction.topk]
    assert values == sorted(values, reverse=True)
    # the top-k are the k largest entries of the full vector, with their own class names
    expected = sorted(range(len(class_names)), key=lambda k: -prediction.probabilities[k])[:topk]
    assert values == pytest.approx([prediction.probabilities[k] for k in expected])
    for label, value in prediction.topk:
        assert prediction.probabilities[class_names.index(label)] == pytest.approx(value)
    assert prediction.label == labels[0] and prediction.probability == values[0]


def test_predicts_real_clips_with_the_checkpoint_settings(
    predictor, sample_videos, class_names, checkpoint_views
):
    assert predictor.class_names == class_names
    assert (predictor.num_clips, predictor.num_crops) == (checkpoint_views, 1)
    for name in ("bikes", "carphone_pristine"):
        prediction = predictor.predict(sample_videos[name])
        assert_valid(prediction, 3, class_names)
        assert prediction.video == str(sample_videos[name])
        assert prediction.num_views == checkpoint_views
        assert prediction.error is None
    assert predictor.predict(sample_videos["bikes"]).duration == pytest.approx(10.0, abs=0.05)


def test_predictions_are_deterministic(predictor, sample_videos):
    first = predictor.predict(sample_videos["carphone_distorted"])
    second = predictor.predict(sample_videos["carphone_distorted"])
    assert first.probabilities == second.probabilities


def test_views_can_be_overridden(checkpoint, sample_videos, class_names):
    predictor = Predictor(checkpoint, device="cpu", num_clips=3, num_crops=3, topk=2, batch_size=4)
    prediction = predictor.predict(sample_videos["bikes"])  # 640x272: three distinct crops
    assert prediction.num_views == 9
    assert_valid(prediction, 2, class_names)
    assert predictor.settings["num_clips"] == 3 and predictor.settings["num_crops"] == 3


def test_topk_beyond_the_class_count_lists_every_class(checkpoint, sample_videos, class_names):
    prediction = Predictor(checkpoint, device="cpu", topk=50).predict(sample_videos["carphone_distorted"])
    assert_valid(prediction, len(class_names), class_names)
    assert sorted(label for label, _ in prediction.topk) == sorted(class_names)


def test_package_exports_predictor(checkpoint):
    assert softpool_video.Predictor is Predictor
    # a run folder stands for its best checkpoint
    assert Predictor(checkpoint.parent.parent, device="cpu").checkpoint == checkpoint


def test_unreadable_videos_are_reported_not_replaced(predictor, tmp_path, sample_videos, unreadable_videos):
    """The training dataset swaps an unreadable video for another one; prediction must not."""
    empty, text = unreadable_videos
    missing = tmp_path / "missing.mp4"
    bikes, carphone = sample_videos["bikes"], sample_videos["carphone_distorted"]
    results = predictor.predict_many([empty, bikes, text, missing, carphone])
    assert [r.video for r in results] == [str(p) for p in (empty, bikes, text, missing, carphone)]
    assert [r.ok for r in results] == [False, True, False, False, True]
    assert "empty" in results[0].error
    assert "cannot open" in results[2].error
    assert "does not exist" in results[3].error
    for bad in (results[0], results[2], results[3]):
        assert bad.topk == [] and bad.probabilities == [] and bad.label is None
    # each readable video gets exactly the scores it gets on its own
    assert results[1].probabilities == pytest.approx(predictor.predict(bikes).probabilities, abs=1e-6)
    assert results[4].probabilities == pytest.approx(predictor.predict(carphone).probabilities, abs=1e-6)


def test_a_truncated_video_is_unreadable_not_half_classified(predictor, sample_videos, tmp_path):
    """Its first clip decodes, its last does not: no prediction from part of a broken file."""
    import av

    remuxed = tmp_path / "faststart.mp4"  # index first, so that the first half still opens
    with (
        av.open(str(sample_videos["bikes"])) as source,
        av.open(str(remuxed), "w", options={"movflags": "faststart"}) as target,
    ):
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    data = remuxed.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    assert predictor.predict(remuxed).ok
    prediction = predictor.predict(truncated)
    assert not prediction.ok and prediction.probabilities == [] and prediction.num_views == 0
    assert "truncated: the file holds" in prediction.error  # its header lists 250 frames


def test_decoding_workers_give_the_same_results(checkpoint, mixed_folder):
    in_process = Predictor(checkpoint, device="cpu").predict_many([mixed_folder])
    with_workers = Predictor(checkpoint, device="cpu", num_workers=2).predict_many([mixed_folder])
    assert [r.video for r in with_workers] == [r.video for r in in_process]
    assert [r.error for r in with_workers] == [r.error for r in in_process]
    for a, b in zip(in_process, with_workers):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_predict_many_expands_folders(predictor, mixed_folder):
    results = predictor.predict_many([mixed_folder])
    by_name = {r.video.rsplit("/", 1)[-1]: r for r in results}
    assert sorted(by_name) == ["bikes.mp4", "carphone_distorted.mp4", "empty.mp4", "notes.mp4"]
    assert by_name["bikes.mp4"].ok and by_name["carphone_distorted.mp4"].ok
    assert not by_name["empty.mp4"].ok and not by_name["notes.mp4"].ok


def test_find_videos(tmp_path, sample_videos):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ("a/x.MP4", "a/b/y.avi", "a/readme.txt", ".hidden/z.mp4", "a/.w.mp4"):
        (tmp_path / name).write_bytes(b"0")
    videos, notes = find_videos([tmp_path / "a", tmp_path / "a" / "x.MP4", tmp_path / "empty", "loose.txt"])
    assert videos == [tmp_path / "a" / "b" / "y.avi", tmp_path / "a" / "x.MP4", Path("loose.txt")]
    assert len(notes) == 1 and str(tmp_path / "empty") in notes[0]
    videos, _ = find_videos([tmp_path])
    assert ".hidden" not in str(videos) and ".w.mp4" not in str(videos)


def test_malicious_checkpoint_is_refused(tmp_path):
    """weights_only=True loading: a pickle that runs code on load is rejected, and the code never runs."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (shutil.copyfile, (__file__, str(marker)))

    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt"):
        Predictor(evil, device="cpu")
    assert not marker.exists()


def test_a_checkpoint_that_is_not_ours_is_refused(tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match="lacks"):
        Predictor(weights, device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"num_crops": 2}, "num_crops"),
        ({"num_clips": 0}, "num_clips"),
        ({"topk": 0}, "topk"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"device": "tpu"}, "device"),
        ({"decoder": "ffmpeg"}, "decoder"),
    ],
)
def test_bad_arguments_name_themselves(checkpoint, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Predictor(checkpoint, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device=cuda but no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_predictions_match_the_cpu(checkpoint, sample_videos):
    cpu = Predictor(checkpoint, device="cpu").predict(sample_videos["bikes"])
    gpu_predictor = Predictor(checkpoint, device="auto")
    assert gpu_predictor.device.type == "cuda"
    gpu = gpu_predictor.predict(sample_videos["bikes"])
    assert gpu.probabilities == pytest.approx(cpu.probabilities, abs=1e-4)
