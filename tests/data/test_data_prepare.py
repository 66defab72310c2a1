"""datasets/ scripts: check_videos, prepare_ucf101, prepare_kinetics (through their package mains)."""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path

import pytest

from softpool_video.data import open_video
from softpool_video.data.checking import check_video, check_videos
from softpool_video.data.checking import main as check_main
from softpool_video.data.prepare import compare_layout, main_kinetics, main_ucf101

REPO = Path(__file__).resolve().parents[2]


def test_check_videos_lists_exactly_the_bad_files(tmp_path, make_video, bad_files):
    good = [make_video(tmp_path / "ok" / f"g{k}.mp4", num_frames=30, seed=k) for k in range(2)]
    good.append(make_video(tmp_path / "ok" / "g.avi", num_frames=30))
    candidates = good + [p for kind, p in bad_files.items() if kind != "directory"]
    bad = dict(check_videos(candidates, workers=2))
    assert set(bad) == {str(p) for kind, p in bad_files.items() if kind != "directory"}
    assert all(reason for reason in bad.values())
    assert check_video(good[0]) is None and check_video(good[0], backend="decord") is None


def test_check_videos_command_writes_the_list(tmp_path, make_video, bad_files, capsys):
    make_video(bad_files["text"].parent / "fine.mp4", num_frames=20)
    output = tmp_path / "report" / "unreadable.txt"
    assert check_main([str(bad_files["text"].parent), "workers=1", f"output={output}"]) == 1
    lines = output.read_text().splitlines()
    listed = {line.split("\t")[0] for line in lines}
    assert listed == {str(p) for kind, p in bad_files.items() if kind != "directory"}
    assert all("\t" in line and line.split("\t")[1] for line in lines)
    printed = capsys.readouterr()
    summary = f"{len(listed)} of {len(listed) + 1} videos are unreadable; list written to {output}"
    assert summary in printed.out
    assert printed.err == f"check_videos.py: error: {summary}\n"  # exit 1: the same one line on stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_main([str(empty), f"output={tmp_path / 'never.txt'}"]) == 2
    assert capsys.readouterr().err == f"check_videos.py: error: no video files in {empty}\n"
    assert not (tmp_path / "never.txt").exists()


def test_compare_layout_ignores_extensions(tmp_path):
    for name in ("a.avi", "b.mp4", "stray.mkv"):
        (tmp_path / "v" / "c").mkdir(parents=True, exist_ok=True)
        (tmp_path / "v" / "c" / name).write_bytes(b"")
    listed = [
        tmp_path / "v" / "c" / "a.avi",
        tmp_path / "v" / "c" / "b.avi",
        tmp_path / "v" / "c" / "gone.avi",
    ]
    report = compare_layout(listed, tmp_path / "v")
    assert report.missing == [tmp_path / "v" / "c" / "gone.avi"]
    assert report.extra == [tmp_path / "v" / "c" / "stray.mkv"]
    assert "1 missing" in report.summary() and "1 extra" in report.summary()


def make_ucf(root: Path, make_video) -> None:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Jump\n2 Run\n")
    train, test = [], []
    for name in ("Jump", "Run"):
        for group in (1, 2):
            relative = f"{name}/v_{name}_g{group:02d}_c01.avi"
            make_video(root / "UCF-101" / relative, num_frames=12, height=48, width=64, seed=group)
            (test if group == 1 else train).append(relative)
    for split in (1, 2, 3):
        (lists / f"trainlist0{split}.txt").write_text(
            "".join(f"{p} {1 + p.startswith('Run')}\n" for p in train)
        )
        (lists / f"testlist0{split}.txt").write_text("".join(f"{p}\n" for p in test))


def test_prepare_ucf101_reports_and_reencodes(tmp_path, make_video, capsys):
    root = tmp_path / "ucf"
    make_ucf(root, make_video)
    assert main_ucf101([str(root)]) == 0
    assert "0 missing" in capsys.readouterr().out
    out = tmp_path / "small"
    assert main_ucf101([str(root), f"reencode={out}", "short_side=32", "workers=1"]) == 0
    copy = out / "UCF-101" / "Jump" / "v_Jump_g01_c01.mp4"
    with open_video(copy) as video:
        assert (video.info.height, video.info.width, video.info.num_frames) == (32, 42, 12)
    assert (out / "ucfTrainTestlist" / "trainlist01.txt").is_file()
    # the copy is a complete dataset root: the .avi lists resolve to the .mp4 copies
    assert main_ucf101([str(out)]) == 0
    stamp = copy.stat().st_mtime_ns
    assert main_ucf101([str(root), f"reencode={out}", "short_side=32", "workers=1"]) == 0
    assert copy.stat().st_mtime_ns == stamp  # resumable: done files are kept
    (root / "UCF-101" / "Run" / "v_Run_g02_c01.avi").unlink()
    (root / "UCF-101" / "Run" / "v_Run_g09_c01.avi").write_bytes(b"")
    assert main_ucf101([str(root)]) == 1
    printed = capsys.readouterr()
    report = printed.out
    assert printed.err == "prepare_ucf101.py: error: 1 listed video is missing (see the report above)\n"
    assert "1 missing" in report and "v_Run_g02_c01.avi" in report
    assert "1 extra" in report and "v_Run_g09_c01.avi" in report


def test_prepare_kinetics_on_the_synthetic_copy(small_synthetic, tmp_path, capsys):
    root = tmp_path / "kinetics"
    shutil.copytree(small_synthetic / "kinetics", root)
    assert main_kinetics([str(root)]) == 0
    assert "0 missing" in capsys.readouterr().out
    victim = next((root / "val").rglob("*.mp4"))
    victim.unlink()
    assert main_kinetics([str(root)]) == 1
    assert victim.name in capsys.readouterr().out


@pytest.mark.parametrize(
    "script",
    ["check_videos.py", "prepare_ucf101.py", "prepare_hmdb51.py", "prepare_kinetics.py", "make_synthetic.py"],
)
def test_scripts_are_thin_wrappers_that_run(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / "datasets" / script), run_name="__main__")
    assert info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_benchmark_wrapper_is_importable():
    namespace = runpy.run_path(str(REPO / "tools" / "benchmark_data.py"), run_name="not_main")
    assert namespace["main"].__module__ == "softpool_video.bench.data"
