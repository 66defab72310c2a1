"""Data tools tell the truth: check_videos on every source the datasets use, verified re-encoding,
prepare_hmdb51."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from softpool_video.data import open_video
from softpool_video.data.checking import main as check_main
from softpool_video.data.checking import videos_to_check
from softpool_video.data.prepare import main_hmdb51, main_ucf101, reencode_video
from softpool_video.data.testing import read_numbers

GOOD_VARIANTS = ["mkv_vfr", "mkv_audio_longer", "webm_audio_longer", "avi_xvid_packed_bframes", "mp4_h264_60"]


def listed(output: Path) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in output.read_text().splitlines())


@pytest.mark.parametrize("backend", ["pyav", "decord", "torchcodec"])
def test_check_flags_exactly_the_broken_files_not_vfr_or_long_audio(
    tmp_path, video_variants, bad_files, backend
):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in GOOD_VARIANTS:
        shutil.copy(video_variants[name].path, folder / f"{name}{video_variants[name].path.suffix}")
    for kind in ("truncated_indexed", "corrupt", "text", "zero_byte"):
        shutil.copy(bad_files[kind], folder / bad_files[kind].name)
    output = tmp_path / "unreadable.txt"
    assert check_main([str(folder), f"backend={backend}", "workers=2", f"output={output}"]) == 1
    bad = listed(output)
    assert set(bad) == {
        str(folder / bad_files[k].name) for k in ("truncated_indexed", "corrupt", "text", "zero_byte")
    }
    assert "truncated" in bad[str(folder / "truncated_indexed.mp4")]


def make_ucf(root: Path, make_video, broken: Path) -> list[str]:
    """UCF-101 layout with one truncated and one missing listed video; returns their paths."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Jump\n2 Run\n")
    train, test = [], []
    for name in ("Jump", "Run"):
        for group in (1, 2):
            relative = f"{name}/v_{name}_g{group:02d}_c01.avi"
            make_video(root / "UCF-101" / relative, num_frames=12, seed=group)
            (test if group == 1 else train).append(relative)
    shutil.copy(broken, root / "UCF-101" / "Run" / "v_Run_g02_c01.avi")
    train.append("Run/v_Run_g03_c01.avi")  # listed, never downloaded
    for split in (1, 2, 3):
        (lists / f"trainlist0{split}.txt").write_text(
            "".join(f"{p} {1 + p.startswith('Run')}\n" for p in train)
        )
        (lists / f"testlist0{split}.txt").write_text("".join(f"{p}\n" for p in test))
    return [
        str(root / "UCF-101" / "Run" / "v_Run_g02_c01.avi"),
        str(root / "UCF-101" / "Run" / "v_Run_g03_c01.avi"),
    ]


def test_check_a_ucf101_root_or_list_from_another_directory(tmp_path, make_video, bad_files, monkeypatch):
    root = tmp_path / "ucf101"
    expected = make_ucf(root, make_video, bad_files["truncated_indexed"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for source in (root, root / "ucfTrainTestlist" / "trainlist02.txt"):
        output = elsewhere / f"{source.name}.txt"
        assert check_main([str(source), "workers=1", f"output={output}"]) == 1
        bad = listed(output)
        assert sorted(bad) == expected  # paths resolve under UCF-101/, as the dataset does
        assert "does not exist" in bad[expected[1]]
    (sources,) = videos_to_check(root / "ucfTrainTestlist" / "testlist01.txt")
    assert len(sources.videos) == 2 and "paths relative to" in sources.description


def test_check_kinetics_csvs_with_labels_headers_and_an_unlabelled_test_csv(tmp_path, make_video):
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    rows = [("abseiling", "aaa", 0, 10), ("air drumming", "bbb", 5, 15), ("abseiling", "ccc", 20, 30)]
    lines = ["label,youtube_id,time_start,time_end,split"]
    for label, video, start, end in rows:
        lines.append(f'"{label}",{video},{start},{end},train')
        make_video(root / "train" / label / f"{video}_{start:06d}_{end:06d}.mp4", num_frames=8)
    (root / "annotations" / "train.csv").write_text("\n".join(lines) + "\n")
    (root / "annotations" / "test.csv").write_text(
        "youtube_id,time_start,time_end,split\nddd,1,11,test\neee,2,12,test\n"
    )
    make_video(root / "test" / "ddd_000001_000011.mkv", num_frames=8)
    (root / "test" / "eee_000002_000012.mp4").write_text("not a video")
    output = tmp_path / "bad.txt"
    assert check_main([str(root), "workers=1", f"output={output}"]) == 1
    assert list(listed(output)) == [str(root / "test" / "eee_000002_000012.mp4")]
    # one CSV on its own: the label column is a label, never a path
    found = videos_to_check(root / "annotations" / "train.csv")[0].videos
    assert sorted(p.name for p in found) == [
        "aaa_000000_000010.mp4",
        "bbb_000005_000015.mp4",
        "ccc_000020_000030.mp4",
    ]


def test_check_hmdb51_split_files_with_names_starting_with_hash(tmp_path, make_video):
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    names = ["#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi", "clap_1.avi", "clap_2.avi"]
    for name in names[:2]:
        make_video(root / "hmdb51_org" / "clap" / name, num_frames=8)
    for split in (1, 2, 3):
        (splits / f"clap_test_split{split}.txt").write_text(
            "".join(f"{n} {k % 3} \n" for k, n in enumerate(names))
        )
    output = tmp_path / "bad.txt"
    assert check_main([str(root), "workers=1", f"output={output}"]) == 1
    assert list(listed(output)) == [str(root / "hmdb51_org" / "clap" / "clap_2.avi")]
    (single,) = videos_to_check(splits / "clap_test_split1.txt")
    assert [p.name for p in single.videos] == names


def test_check_a_generic_csv_with_header_and_quoted_paths(tmp_path, make_video):
    root = tmp_path / "mine"
    make_video(root / "clips" / "jump, high.mp4", num_frames=8)
    make_video(root / "clips" / "run 1.mp4", num_frames=8)
    (root / "train.csv").write_text(
        'path,label\n"clips/jump, high.mp4",jump\nclips/run 1.mp4,run\nclips/gone.mp4,run\n'
    )
    output = tmp_path / "bad.txt"
    assert check_main([str(root / "train.csv"), "workers=1", f"output={output}"]) == 1
    assert list(listed(output)) == [str(root / "clips" / "gone.mp4")]


def test_check_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys):
    output = tmp_path / "never.txt"
    assert check_main([str(tmp_path / "nowhere"), f"output={output}"]) == 2
    assert (
        capsys.readouterr().err == f"check_videos.py: error: {tmp_path / 'nowhere'}: no such file or folder\n"
    )
    assert check_main([str(tmp_path), "workers=0", f"output={output}"]) == 2
    assert not output.exists()


def test_reencode_keeps_every_frame_and_timestamp_of_vfr_and_packed_sources(tmp_path, video_variants):
    for name in ("mkv_vfr", "avi_xvid_packed_bframes"):
        variant = video_variants[name]
        target = tmp_path / f"{name}.mp4"
        reencode_video(variant.path, target)  # small sources are not upscaled: the marks stay legible
        with open_video(target) as copy:
            assert copy.info.num_frames == variant.num_frames
            np.testing.assert_allclose(copy.frame_times, variant.times, atol=1e-3)
            assert read_numbers(copy.decode(range(variant.num_frames)).frames) == list(
                range(variant.num_frames)
            )


def test_reencode_lists_truncated_and_corrupt_sources_instead_of_shortening_them(
    tmp_path, make_video, bad_files, capsys
):
    root = tmp_path / "ucf101"
    make_ucf(root, make_video, bad_files["truncated_indexed"])
    shutil.copy(bad_files["corrupt"], root / "UCF-101" / "Jump" / "v_Jump_g02_c01.avi")
    out = tmp_path / "small"
    assert main_ucf101([str(root), f"reencode={out}", "workers=2"]) == 1  # no upscaling
    printed = capsys.readouterr().out
    assert "2 sources are truncated or corrupt and were not copied" in printed
    assert "v_Run_g02_c01.avi: truncated" in printed
    assert not (out / "UCF-101" / "Run" / "v_Run_g02_c01.mp4").exists()
    assert not (out / "UCF-101" / "Jump" / "v_Jump_g02_c01.mp4").exists()
    problems = (out / "reencode_problems.txt").read_text().splitlines()
    assert len(problems) == 2 and all("\tsource\t" in line for line in problems)
    with open_video(out / "UCF-101" / "Jump" / "v_Jump_g01_c01.mp4") as copy:
        assert read_numbers(copy.decode(range(12)).frames) == list(range(12))


def fake_unrar(bin_dir: Path, video: Path) -> None:
    """An ``unrar`` stand-in: ``unrar x -o+ -idq ARCHIVE DEST/`` creates DEST/<class>/ holding the
    names listed in the archive (a text file here), each a copy of ``video``."""
    script = bin_dir / "unrar"
    script.write_text(
        "#!/bin/sh\n"
        'archive="$4"; dest="$5"; name=$(basename "$archive" .rar)\n'
        'mkdir -p "$dest/$name"\n'
        f'while read -r file; do cp "{video}" "$dest/$name/$file"; done < "$archive"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_prepare_hmdb51_unpacks_per_class_rars_checks_and_reencodes(
    tmp_path, make_video, monkeypatch, capsys
):
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    (root / "hmdb51_org").mkdir()
    classes = {"brush_hair": ["#1_brush_u_nm_0.avi", "brush_2.avi"], "clap": ["clap_1.avi", "clap_2.avi"]}
    for name, videos in classes.items():
        (root / "hmdb51_org" / f"{name}.rar").write_text("\n".join(videos) + "\n")
        for split in (1, 2, 3):
            (splits / f"{name}_test_split{split}.txt").write_text(f"{videos[0]} 1\n{videos[1]} 2\n")
    assert main_hmdb51([str(root)]) == 1
    assert "2 classes are still RAR archives" in capsys.readouterr().out
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_unrar(bin_dir, make_video(tmp_path / "source.avi", num_frames=10))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main_hmdb51([str(root), "extract=true"]) == 0
    printed = capsys.readouterr().out
    assert "unpacked 2 class archives" in printed and "4 videos listed, 4 video files on disk" in printed
    out = tmp_path / "small"
    assert main_hmdb51([str(root), f"reencode={out}", "short_side=32", "workers=1"]) == 0
    copy = out / "hmdb51_org" / "brush_hair" / "#1_brush_u_nm_0.mp4"
    with open_video(copy) as video:
        assert video.info.num_frames == 10
    assert main_hmdb51([str(out)]) == 0  # the copy is a complete dataset root
    assert main_hmdb51([str(tmp_path / "nowhere")]) == 2
    assert (
        capsys.readouterr().err
        == f"prepare_hmdb51.py: error: {tmp_path / 'nowhere'}: no such dataset folder\n"
    )
