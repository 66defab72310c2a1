# ruff: noqa: E501 - the table of cases reads best one case per line
"""The dataset scripts (datasets/check_videos.py, prepare_ucf101.py, prepare_hmdb51.py,
prepare_kinetics.py) read the command line of every tool (softpool_video/cli.py): a mistake is
exit status 2 with one line on stderr naming the key or file, and nothing written; a flag of their
former argparse command line is refused with its key=value spelling; a failure is exit 1, one line.
"""

from __future__ import annotations

import os
import runpy
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import softpool_video
from softpool_video.data import checking, prepare

REPO = Path(__file__).resolve().parents[2]

MAINS = {
    "check_videos.py": checking.main,
    "prepare_ucf101.py": prepare.main_ucf101,
    "prepare_hmdb51.py": prepare.main_hmdb51,
    "prepare_kinetics.py": prepare.main_kinetics,
}
COMMANDS = {
    "check_videos.py": checking._command,
    "prepare_ucf101.py": prepare._ucf101_command,
    "prepare_hmdb51.py": prepare._hmdb51_command,
    "prepare_kinetics.py": prepare._kinetics_command,
}


def write_inputs(base: Path) -> dict[str, Path]:
    """Dataset layouts the argument checks look at (annotation files and empty "videos": every case
    fails before anything is decoded), a text file, and an archive-only UCF-101 download."""
    ucf = base / "ucf101"
    (ucf / "ucfTrainTestlist").mkdir(parents=True)
    (ucf / "ucfTrainTestlist" / "classInd.txt").write_text("1 Jump\n2 Run\n")
    for split in (1, 2, 3):
        (ucf / "ucfTrainTestlist" / f"trainlist0{split}.txt").write_text("Jump/v_Jump_g02_c01.avi 1\n")
        (ucf / "ucfTrainTestlist" / f"testlist0{split}.txt").write_text("Run/v_Run_g01_c01.avi\n")
    for name in ("Jump/v_Jump_g02_c01.avi", "Run/v_Run_g01_c01.avi"):
        (ucf / "UCF-101" / name).parent.mkdir(parents=True, exist_ok=True)
        (ucf / "UCF-101" / name).write_bytes(b"")
    bad_label = base / "ucf_bad_label"
    (bad_label / "UCF-101").mkdir(parents=True)
    (bad_label / "ucfTrainTestlist").mkdir()
    (bad_label / "ucfTrainTestlist" / "classInd.txt").write_text("1 Jump\n")
    (bad_label / "ucfTrainTestlist" / "trainlist01.txt").write_text("Jump/v_Jump_g01_c01.avi 7\n")
    archived = base / "ucf_archived"
    (archived / "ucfTrainTestlist").mkdir(parents=True)
    (archived / "UCF101.rar").write_bytes(b"Rar!")
    hmdb = base / "hmdb51"
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    (hmdb / "hmdb51_org").mkdir()
    kinetics = base / "k400"
    (kinetics / "annotations").mkdir(parents=True)
    (kinetics / "annotations" / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    (kinetics / "train").mkdir()
    text = base / "notes.txt"
    text.write_text("my notes, not a dataset\n")
    return {
        "ucf": ucf,
        "bad_label": bad_label,
        "archived": archived,
        "hmdb": hmdb,
        "kinetics": kinetics,
        "text": text,
    }


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    args: tuple[str, ...]
    expect: tuple[str, ...]


# fmt: off
CASES = [
    # ---- prepare_ucf101.py
    Case("ucf-no-root", "prepare_ucf101.py", (), ("no ROOT given",)),
    Case("ucf-two-roots", "prepare_ucf101.py", ("{ucf}", "{hmdb}"), ("at most 1 ROOT expected",)),
    Case("ucf-missing-root", "prepare_ucf101.py", ("{cwd}/ucf101",), ("ucf101: no such dataset folder",)),
    Case("ucf-root-is-file", "prepare_ucf101.py", ("{text}",), ("notes.txt: is a file, not a dataset folder",)),
    Case("ucf-unknown-key", "prepare_ucf101.py", ("{ucf}", "reencod={cwd}/small"), ("unknown option 'reencod'", "did you mean reencode?")),
    Case("ucf-crf", "prepare_ucf101.py", ("{ucf}", "reencode={cwd}/small", "crf=99"), ("crf must be an integer in [0, 51], got '99'",)),
    Case("ucf-short-side", "prepare_ucf101.py", ("{ucf}", "reencode={cwd}/small", "short_side=1"), ("short_side must be an integer >= 2, got '1'",)),
    Case("ucf-extract-value", "prepare_ucf101.py", ("{ucf}", "extract=maybe"), ("extract must be true or false, got 'maybe'",)),
    Case("ucf-repeated", "prepare_ucf101.py", ("{ucf}", "reencode={cwd}/a", "workers=1", "workers=2"), ("workers is given twice (workers=1 and workers=2)",)),
    Case("ucf-key-space", "prepare_ucf101.py", ("{ucf}", "workers", "2"), ("'workers' needs a value after '=': write workers=VALUE",)),
    Case("ucf-without-reencode", "prepare_ucf101.py", ("{ucf}", "short_side=128"), ("short_side= only applies with reencode=OUTPUT_ROOT",)),
    Case("ucf-annotation-dir", "prepare_ucf101.py", ("{ucf}", "annotation_dir=lists"), ("annotation_dir=lists:", "lists is not a folder", "UCF101TrainTestSplits-RecognitionTask.zip")),
    Case("ucf-video-dir", "prepare_ucf101.py", ("{ucf}", "video_dir=videos"), ("video_dir=videos:", "videos is not a folder",)),
    Case("ucf-archive-needs-extract", "prepare_ucf101.py", ("{archived}",), ("video_dir=UCF-101:", "UCF101.rar is there: add extract=true",)),
    Case("ucf-bad-label", "prepare_ucf101.py", ("{bad_label}",), ("trainlist01.txt:1: label '7' is not in 1..1",)),
    Case("ucf-output-under-file", "prepare_ucf101.py", ("{ucf}", "reencode={text}/small"), ("reencode=", "notes.txt, which is a file, not a folder",)),
    Case("ucf-output-is-file", "prepare_ucf101.py", ("{ucf}", "reencode={text}"), ("reencode=", "notes.txt: is a file, not a folder",)),
    Case("ucf-output-is-root", "prepare_ucf101.py", ("{ucf}", "reencode={ucf}"), ("must be outside", "would mix with or replace the sources")),
    Case("ucf-output-in-videos", "prepare_ucf101.py", ("{ucf}", "reencode={ucf}/UCF-101/small"), ("must be outside", "UCF-101")),
    Case("ucf-legacy-reencode", "prepare_ucf101.py", ("{ucf}", "--reencode", "{cwd}/small"), ("'--reencode' is the old spelling: use reencode=OUTPUT_ROOT",)),
    Case("ucf-legacy-extract", "prepare_ucf101.py", ("{ucf}", "--extract"), ("'--extract' is the old spelling: use extract=true",)),
    Case("ucf-legacy-equals", "prepare_ucf101.py", ("{ucf}", "--short-side=32"), ("'--short-side' is the old spelling: use short_side=N",)),
    Case("ucf-unknown-flag", "prepare_ucf101.py", ("{ucf}", "--fast"), ("unknown flag '--fast': options are key=value",)),
    # ---- prepare_hmdb51.py
    Case("hmdb-missing-root", "prepare_hmdb51.py", ("{cwd}/hmdb",), ("hmdb: no such dataset folder",)),
    Case("hmdb-no-split-files", "prepare_hmdb51.py", ("{hmdb}",), ("no '<class>_test_split<N>.txt' files in",)),
    Case("hmdb-annotation-dir", "prepare_hmdb51.py", ("{hmdb}", "annotation_dir=splits"), ("annotation_dir=splits:", "test_train_splits.rar")),
    Case("hmdb-unknown-key", "prepare_hmdb51.py", ("{hmdb}", "extracts=true"), ("unknown option 'extracts'", "did you mean extract?")),
    Case("hmdb-legacy", "prepare_hmdb51.py", ("{hmdb}", "--annotation-dir", "splits"), ("'--annotation-dir' is the old spelling: use annotation_dir=DIR",)),
    Case("hmdb-output-under-file", "prepare_hmdb51.py", ("{hmdb}", "reencode={text}/x/y"), ("reencode=", "which is a file, not a folder")),
    # ---- prepare_kinetics.py
    Case("kinetics-splits-syntax", "prepare_kinetics.py", ("{kinetics}", "splits=train.csv"), ("splits takes CSV:DIR pairs like splits=train.csv:train,validate.csv:val, got 'train.csv'",)),
    Case("kinetics-missing-csv", "prepare_kinetics.py", ("{kinetics}",), ("splits=validate.csv:val:", "validate.csv does not exist")),
    Case("kinetics-missing-folder", "prepare_kinetics.py", ("{kinetics}", "splits=train.csv:videos"), ("splits=train.csv:videos:", "videos is not a folder")),
    Case("kinetics-annotation-dir", "prepare_kinetics.py", ("{kinetics}", "annotation_dir=csv"), ("annotation_dir=csv:", "is not a folder")),
    Case("kinetics-no-labels", "prepare_kinetics.py", ("{kinetics}", "splits=train.csv:train"), ("train.csv: no labels",)),
    Case("kinetics-output-in-videos", "prepare_kinetics.py", ("{kinetics}", "splits=train.csv:train", "reencode={kinetics}/train/small"), ("must be outside", "train")),
    Case("kinetics-legacy", "prepare_kinetics.py", ("{kinetics}", "--splits", "train.csv:train"), ("'--splits' is the old spelling: use splits=train.csv:train,validate.csv:val",)),
    Case("kinetics-no-extract", "prepare_kinetics.py", ("{kinetics}", "extract=true"), ("unknown option 'extract'",)),
    # ---- check_videos.py
    Case("check-no-source", "check_videos.py", (), ("no SOURCE given",)),
    Case("check-missing-source", "check_videos.py", ("{ucf}", "{cwd}/clip.mp4"), ("clip.mp4: no such file or folder",)),
    Case("check-backend", "check_videos.py", ("{ucf}", "backend=pyav,ffmpeg"), ("backend: 'ffmpeg' not among pyav, decord, torchcodec",)),
    Case("check-workers", "check_videos.py", ("{ucf}", "workers=0"), ("workers must be an integer >= 1, got '0'",)),
    Case("check-unknown-key", "check_videos.py", ("{ucf}", "worker=2"), ("unknown option 'worker'", "did you mean workers?")),
    Case("check-video-dir", "check_videos.py", ("{ucf}", "video_dir={cwd}/videos"), ("video_dir=", "videos: no such folder")),
    Case("check-output-under-file", "check_videos.py", ("{ucf}", "output={text}/bad.txt"), ("output=", "cannot write it", "notes.txt is a file, not a folder")),
    Case("check-output-is-folder", "check_videos.py", ("{ucf}", "output={ucf}"), ("output=", "is a folder; give a file name")),
    Case("check-bad-list", "check_videos.py", ("{bad_label}/ucfTrainTestlist/trainlist01.txt",), ("label '7' is not in 1..1",)),
    Case("check-legacy-backend", "check_videos.py", ("{ucf}", "--backend", "pyav", "decord"), ("'--backend' is the old spelling: use backend=pyav,decord",)),
    Case("check-legacy-output", "check_videos.py", ("{ucf}", "--output", "bad.txt"), ("'--output' is the old spelling: use output=FILE",)),
    Case("check-legacy-workers", "check_videos.py", ("{ucf}", "--workers=8"), ("'--workers' is the old spelling: use workers=N",)),
]
# fmt: on


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    inputs = write_inputs(tmp_path / "inputs")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # check_videos.py writes unreadable_videos.txt here by default
    before = files_under(tmp_path / "inputs")
    values = {"cwd": cwd, **inputs}
    args = [arg.format(**values) for arg in case.args]
    code = MAINS[case.tool](args)
    printed = capsys.readouterr()
    lines = [line for line in printed.err.splitlines() if line.strip()]
    assert code == 2, (args, printed.err)
    assert len(lines) == 1, printed.err
    assert lines[0].startswith(f"{case.tool}: error: "), lines[0]
    for fragment in case.expect:
        assert fragment in lines[0], (fragment, lines[0])
    assert printed.out == "", printed.out  # no partial report before the error
    assert files_under(cwd) == []
    assert files_under(tmp_path / "inputs") == before


def test_every_former_flag_names_an_option_and_its_spelling_parses(tmp_path, capsys):
    """Each flag of the former command lines is refused with a key=value spelling that the new
    command line accepts (placeholders filled in)."""
    former = {
        "prepare_ucf101.py": [
            "--annotation-dir",
            "--video-dir",
            "--extract",
            "--reencode",
            "--short-side",
            "--crf",
            "--workers",
        ],
        "prepare_hmdb51.py": [
            "--annotation-dir",
            "--video-dir",
            "--extract",
            "--reencode",
            "--short-side",
            "--crf",
            "--workers",
        ],
        "prepare_kinetics.py": [
            "--annotation-dir",
            "--splits",
            "--reencode",
            "--short-side",
            "--crf",
            "--workers",
        ],
        "check_videos.py": ["--video-dir", "--backend", "--workers", "--output"],
    }
    examples = {"DIR": "somewhere", "N": "8", "OUTPUT_ROOT": "small", "FILE": "bad.txt"}
    for tool, flags in former.items():
        command = COMMANDS[tool]()
        assert set(command.legacy_flags) == set(flags), tool
        for flag in flags:
            assert MAINS[tool]([str(tmp_path), flag]) == 2
            line = capsys.readouterr().err.strip()
            assert line.startswith(f"{tool}: error: {flag!r} is the old spelling: use "), line
            spelling = line.split(": use ", 1)[1].split(" ", 1)[0]
            key, _, value = spelling.partition("=")
            assert key in command.options and key.replace("_", "-") == flag[2:], (flag, spelling)
            parsed = command.parse([str(tmp_path), f"{key}={examples.get(value, value)}"])
            assert parsed.given == {key: examples.get(value, value)}


def test_exit_1_is_one_line_when_unpacking_fails(tmp_path, monkeypatch, capsys):
    """A runtime failure (here the RAR extractor failing) is exit status 1 with one line."""
    root = tmp_path / "hmdb51"
    (root / "testTrainMulti_7030_splits").mkdir(parents=True)
    (root / "hmdb51_org.rar").write_bytes(b"Rar!")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    unrar = bin_dir / "unrar"
    unrar.write_text("#!/bin/sh\necho 'CRC failed in hmdb51_org.rar' >&2\nexit 3\n")
    unrar.chmod(unrar.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert prepare.main_hmdb51([str(root), "extract=true"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prepare_hmdb51.py: error: "), err
    assert "unrar failed (exit 3): CRC failed in hmdb51_org.rar" in err


@pytest.mark.parametrize("script", sorted(MAINS))
def test_version_and_help_of_the_scripts(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for flag in ("--version", "--help"):
        monkeypatch.setattr(sys, "argv", [script, flag])
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(REPO / "datasets" / script), run_name="__main__")
        printed = capsys.readouterr()
        assert info.value.code == 0 and printed.err == ""
        if flag == "--version":
            assert printed.out == f"{script} {softpool_video.__version__}\n"
        else:
            assert printed.out.startswith(f"usage: {script} ") and "key=value" in printed.out
            assert "exit status: 0 done, 1 the work failed, 2 a bad argument" in printed.out
    assert files_under(tmp_path) == []


def test_the_scripts_as_users_run_them(tmp_path):
    """``python datasets/SCRIPT ROOT --workers 4`` (an old command line) in subprocesses, as a user
    runs them: one script per module (each run is mostly Python start-up; they run side by side,
    and the other scripts are the same code from ``main`` on)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }

    def run(script: str) -> subprocess.CompletedProcess:
        cwd = tmp_path / script
        cwd.mkdir()
        command = [sys.executable, str(REPO / "datasets" / script), str(cwd), "--workers", "4"]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

    scripts = ["check_videos.py", "prepare_hmdb51.py"]
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(scripts, pool.map(run, scripts)))
    for script, done in runs.items():
        assert done.returncode == 2, (script, done.stderr)
        assert done.stderr == (
            f"{script}: error: '--workers' is the old spelling: use workers=N "
            f"(options are key=value; see {script} --help)\n"
        )
        assert done.stdout == "" and files_under(tmp_path / script) == []
