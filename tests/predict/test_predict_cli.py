"""``softpool-predict``: printed tables, JSON/CSV files, folders with unreadable files, exit codes."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from softpool_video.predict.cli import main

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\s+(\d+)\s+(\S+)\s+(\d\.\d{4})\s*#*$")


def parse_tables(stdout: str) -> dict[str, list[tuple[int, str, float]]]:
    """Printed predictions -> video -> [(rank, label, probability)] (unreadable videos: [])."""
    tables: dict[str, list[tuple[int, str, float]]] = {}
    current = None
    for line in stdout.splitlines():
        if not line.strip() or line.lstrip().startswith("rank"):
            continue
        match = ROW.match(line)
        if match:
            tables[current].append((int(match[1]), match[2], float(match[3])))
        else:
            current = line.split("  ")[0]
            tables[current] = []
    return tables


def test_prints_a_table_per_video(checkpoint, sample_videos, class_names, capsys):
    videos = [str(sample_videos["bikes"]), str(sample_videos["carphone_pristine"])]
    assert main([*videos, f"checkpoint={checkpoint}", "topk=4", "device=cpu"]) == 0
    out = capsys.readouterr()
    tables = parse_tables(out.out)
    assert list(tables) == videos
    for rows in tables.values():
        assert [rank for rank, _, _ in rows] == [1, 2, 3, 4]
        assert sorted(label for _, label, _ in rows) == sorted(class_names)  # topk=4: every class once
        probabilities = [p for _, _, p in rows]
        assert probabilities == sorted(probabilities, reverse=True)
        assert math.isclose(sum(probabilities), 1.0, abs_tol=4 * 5e-5)  # 4 decimals printed
    assert "classified 2 of 2" in out.err


def test_topk_is_respected(checkpoint, sample_videos, class_names, capsys):
    assert main([str(sample_videos["carphone_distorted"]), f"checkpoint={checkpoint}", "topk=2"]) == 0
    (rows,) = parse_tables(capsys.readouterr().out).values()
    assert len(rows) == 2 and all(label in class_names for _, label, _ in rows)


def test_json_and_csv_outputs_parse_back(checkpoint, mixed_folder, tmp_path, class_names, capsys):
    json_path, csv_path = tmp_path / "out" / "preds.json", tmp_path / "preds.csv"
    common = [str(mixed_folder), f"checkpoint={checkpoint}", "topk=3", "num_clips=3", "num_crops=1"]
    assert main([*common, f"output={json_path}"]) == 0
    assert main([*common, f"output={csv_path}", "progress=false"]) == 0
    capsys.readouterr()

    document = json.loads(json_path.read_text())
    assert document["mode"] == "predict" and document["class_names"] == class_names
    assert document["settings"]["num_clips"] == 3 and document["settings"]["topk"] == 3
    videos = {Path(v["video"]).name: v for v in document["videos"]}
    assert sorted(videos) == ["bikes.mp4", "carphone_distorted.mp4", "empty.mp4", "notes.mp4"]
    for name in ("bikes.mp4", "carphone_distorted.mp4"):
        entry = videos[name]
        assert entry["ok"] and entry["error"] is None and entry["num_views"] == 3
        assert math.isclose(sum(entry["probabilities"]), 1.0, abs_tol=1e-6)
        assert [t["label"] for t in entry["topk"]] == [
            class_names[k] for k in sorted(range(4), key=lambda k: -entry["probabilities"][k])[:3]
        ]
    for name in ("empty.mp4", "notes.mp4"):
        assert not videos[name]["ok"] and videos[name]["error"] and videos[name]["topk"] == []

    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["video", "error", "duration", "num_views"] + [
        f"top{r}_{c}" for r in (1, 2, 3) for c in ("label", "probability")
    ]
    assert [row["video"] for row in rows] == [v["video"] for v in document["videos"]]
    for row in rows:
        entry = videos[Path(row["video"]).name]
        if entry["ok"]:
            assert row["error"] == "" and row["top1_label"] == entry["topk"][0]["label"]
            assert float(row["top1_probability"]) == pytest.approx(entry["topk"][0]["probability"], abs=1e-6)
            assert float(row["duration"]) > 0
        else:
            assert row["error"] and row["top1_label"] == ""


def test_unreadable_files_are_reported_and_the_rest_classified(checkpoint, mixed_folder, capsys):
    assert main([str(mixed_folder), f"checkpoint={checkpoint}"]) == 0
    out = capsys.readouterr()
    tables = parse_tables(out.out)
    readable = {Path(v).name: rows for v, rows in tables.items() if rows}
    assert sorted(readable) == ["bikes.mp4", "carphone_distorted.mp4"]
    assert "empty.mp4  UNREADABLE: file is empty" in out.out
    assert "notes.mp4  UNREADABLE: cannot open" in out.out
    assert "2 of 4 video(s) could not be read" in out.err
    assert "classified 2 of 4" in out.err


def test_only_unreadable_files_exit_non_zero(checkpoint, unreadable_videos, tmp_path, capsys):
    folder = unreadable_videos[0].parent
    output = tmp_path / "errors.json"
    assert main([str(folder), f"checkpoint={checkpoint}", f"output={output}"]) == 1
    err = capsys.readouterr().err
    assert "none of the 2 video(s) could be classified" in err
    # the output still lists what went wrong
    assert [v["ok"] for v in json.loads(output.read_text())["videos"]] == [False, False]
    # a path that does not exist is a bad argument, found before the model is loaded
    assert main([str(tmp_path / "missing.mp4"), f"checkpoint={checkpoint}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.mp4: no such video file or folder" in err


def test_a_folder_without_videos_exits_non_zero(checkpoint, tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no videos here")
    assert main([str(tmp_path / "docs"), f"checkpoint={checkpoint}"]) == 1
    err = capsys.readouterr().err
    assert "no video files in this folder" in err and "nothing to classify" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "checkpoint=PATH is required"),
        (["checkpoint=does/not/exist.pt"], "checkpoint=does/not/exist.pt: no such file"),
        (["CKPT", "topk=0"], "topk must be an integer >= 1, got '0'"),
        (["CKPT", "topk=many"], "topk must be an integer"),
        (["CKPT", "num_crops=2"], "num_crops must be one of 1, 3, got '2'"),
        (["CKPT", "num_clips=-1"], "num_clips must be an integer >= 1"),
        (["CKPT", "output=preds.txt"], "output=preds.txt: the file name must end in .json or .csv"),
        (["CKPT", "mode=fast"], "mode must be one of predict, timeline, got 'fast'"),
        (["CKPT", "window=3"], "window only applies to mode=timeline"),
        (["CKPT", "mode=timeline", "window=0"], "window must be a positive number, got '0'"),
        (["CKPT", "mode=timeline", "stride=abc"], "stride must be a positive number or null, got 'abc'"),
        (["CKPT", "mode=timeline", "plot=timeline.jpg"], "plot=timeline.jpg: the file name must end in .png"),
        (["CKPT", "device=tpu"], "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        (["CKPT", "decoder=ffmpeg"], "decoder must be one of pyav, decord, torchcodec, got 'ffmpeg'"),
        (["CKPT", "workers=-2"], "workers must be an integer >= 0"),
        (["CKPT", "progress=maybe"], "progress must be true or false"),
        (["CKPT", "colour=red"], "unknown option 'colour'"),
        (["CKPT", "--fast"], "unknown flag '--fast'"),
        (["CKPT", "--topk=3"], "'--topk=3': options are key=value, write topk=3"),
        (["CKPT", "topk=2", "topk=3"], "topk is given twice"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(checkpoint, sample_videos, args, message, capsys):
    args = [f"checkpoint={checkpoint}" if a == "CKPT" else a for a in args]
    assert main([str(sample_videos["bikes"]), *args]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_no_video_is_a_bad_argument(checkpoint, capsys):
    assert main([f"checkpoint={checkpoint}"]) == 2
    assert "no VIDEO or DIR given" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_cuda_without_a_gpu_is_a_bad_argument(checkpoint, sample_videos, capsys):
    assert main([str(sample_videos["bikes"]), f"checkpoint={checkpoint}", "device=cuda"]) == 2
    assert "device=cuda but no CUDA GPU is available" in capsys.readouterr().err


def test_malicious_checkpoint_exits_1(tmp_path, sample_videos, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    evil = tmp_path / "model.pt"
    torch.save({"format_version": 1, "model": Payload(), "config": {}}, evil)
    assert main([str(sample_videos["bikes"]), f"checkpoint={evil}"]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint={evil}" in err and "refused to load checkpoint" in err
    assert "weights_only" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_timeline_mode_writes_json_and_plot(checkpoint, sample_videos, tmp_path, class_names, capsys):
    output, plot = tmp_path / "timeline.json", tmp_path / "timeline.png"
    video = sample_videos["bikes"]
    args = [str(video), f"checkpoint={checkpoint}", "mode=timeline", "window=2", "stride=2.5"]
    assert main([*args, f"output={output}", f"plot={plot}"]) == 0
    out = capsys.readouterr().out
    assert "4 segments of 2.5 s, window 2 s" in out
    starts = [float(line.split()[0]) for line in out.splitlines()[2:] if line.strip()]
    assert starts == [0.0, 2.5, 5.0, 7.5]
    document = json.loads(output.read_text())
    assert document["mode"] == "timeline" and document["settings"]["stride"] == 2.5
    (entry,) = document["videos"]
    segments = entry["segments"]
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(10.0, abs=0.04)
    assert [s["start"] for s in segments] == [0.0, 2.5, 5.0, 7.5]
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
    assert all(s["topk"][0]["label"] in class_names for s in segments)
    with Image.open(plot) as image:
        assert image.format == "PNG"


def test_timeline_csv_and_one_plot_per_video(checkpoint, mixed_folder, tmp_path, capsys):
    output, plot = tmp_path / "timeline.csv", tmp_path / "plots" / "tl.png"
    args = [str(mixed_folder), f"checkpoint={checkpoint}", "mode=timeline", "window=1.5"]
    assert main([*args, f"output={output}", f"plot={plot}", "topk=2"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in plot.parent.iterdir()) == ["tl_bikes.png", "tl_carphone_distorted.png"]
    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert "top2_probability" in rows[0] and "top3_label" not in rows[0]
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        by_video.setdefault(Path(row["video"]).name, []).append(row)
    assert len(by_video["bikes.mp4"]) == 7 and by_video["empty.mp4"][0]["error"]  # 10 s / 1.5 s
    assert [float(r["start"]) for r in by_video["bikes.mp4"]][:3] == [0.0, 1.5, 3.0]


def test_help_and_the_tools_wrapper(capsys):
    assert main(["--help"]) == 0
    assert "usage: softpool-predict VIDEO" in capsys.readouterr().out
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "predict.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "checkpoint=" in result.stdout and "mode=" in result.stdout


def test_checkpoint_may_be_a_run_folder(checkpoint, sample_videos, tmp_path, capsys):
    run_dir = checkpoint.parent.parent  # <run>/checkpoints/best.pt
    assert main([str(sample_videos["carphone_distorted"]), f"checkpoint={run_dir}", "topk=1"]) == 0
    assert len(next(iter(parse_tables(capsys.readouterr().out).values()))) == 1
    assert main([str(sample_videos["carphone_distorted"]), f"checkpoint={tmp_path}"]) == 2
    assert "a folder without checkpoints/best.pt" in capsys.readouterr().err


def test_an_unwritable_output_is_reported(checkpoint, sample_videos, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    output = blocker / "preds.json"
    video = str(sample_videos["carphone_distorted"])
    # found before any video is classified: a bad argument, nothing written
    assert main([video, f"checkpoint={checkpoint}", f"output={output}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"output={output}: cannot write it" in err and "is a file" in err
    assert blocker.read_text() == "a file where a folder should be"


def test_ctrl_c_keeps_what_is_done(checkpoint, mixed_folder, tmp_path, monkeypatch, capsys):
    from softpool_video.predict import Predictor

    original = Predictor.iter_predictions

    def interrupted(self, videos, progress=False):
        for index, prediction in enumerate(original(self, videos, progress)):
            if index == 2:
                raise KeyboardInterrupt
            yield prediction

    monkeypatch.setattr(Predictor, "iter_predictions", interrupted)
    output = tmp_path / "partial.json"
    assert main([str(mixed_folder), f"checkpoint={checkpoint}", f"output={output}"]) == 130
    assert "interrupted after 2 of 4 video(s)" in capsys.readouterr().err
    assert len(json.loads(output.read_text())["videos"]) == 2


def test_unreadable_files_are_explained_without_errno_numbers(checkpoint, unreadable_videos, capsys):
    import re

    folder = unreadable_videos[0].parent
    assert main([str(folder), f"checkpoint={checkpoint}", "progress=false"]) == 1  # none classified: 1
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if "notes.mp4" in line]
    assert lines and all("Errno" not in line and not re.search(r"\d{5,}", line) for line in lines), lines
    assert any("not a video FFmpeg can read" in line for line in lines), lines
