"""`softpool-visualize` end to end on a real clip: files, frame counts, sizes, durations, errors."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from softpool_video.data.decoders import decode_video
from softpool_video.visualize.cli import main
from softpool_video.visualize.render import label_frames, write_mp4

FPS = Fraction(30000, 1001)
# end=1.25 s of a 29.97 fps clip: frames 0..37, i.e. 38 frames; level 1 covers 38, level 2 covers 36
END, FRAMES = 1.25, 38
COVERED = {1: 38, 2: 36}


def read_mp4(path):
    """(frames as RGB arrays, width, height, duration in seconds, average rate) read back with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        duration = float(stream.duration * stream.time_base)
        return frames, stream.width, stream.height, duration, stream.average_rate


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample_videos):
    """One CLI run: 2 levels of 2x2x2 pooling on 38 frames of carphone shrunk to 96 px."""
    output = tmp_path_factory.mktemp("visualize")
    stdout = io.StringIO()
    argv = [
        str(sample_videos["carphone_pristine"]),
        f"end={END}",
        "max_side=96",
        "kernel=2,2,2",
        "levels=2",
        "methods=[soft,max,avg]",
        "contact_frames=3",
        "gif=true",
        "gif_width=300",
        f"output={output}",
    ]
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    clip = decode_video(sample_videos["carphone_pristine"], end=END, max_side=96)
    return code, stdout.getvalue(), output, clip


def test_run_succeeds_and_prints_the_table(run):
    code, printed, output, clip = run
    assert code == 0
    assert "PSNR vs box" in printed and "SSIM up" in printed
    assert clip.frames.shape == (3, FRAMES, 79, 96)
    for name in (
        "retention.csv",
        "contact_sheet.png",
        "xt_slice.png",
        "side_by_side_L1.mp4",
        "side_by_side_L2.gif",
    ):
        assert (output / name).is_file() and str(output / name) in printed


@pytest.mark.parametrize("level", [1, 2])
def test_side_by_side_mp4_frames_size_and_duration(run, level):
    _, _, output, clip = run
    frames, width, height, duration, rate = read_mp4(output / f"side_by_side_L{level}.mp4")
    # every panel plays at the source rate; the pooled ones hold each frame 2**level times
    assert rate == FPS
    assert len(frames) == COVERED[level]
    assert duration == pytest.approx(COVERED[level] / float(FPS), abs=1e-3)
    panel_width = clip.width  # original | max | avg | soft, 4 px apart, padded to even sizes
    assert width == 4 * panel_width + 3 * 4
    assert height % 2 == 0 and clip.height + 20 < height < clip.height + 60


def test_side_by_side_panels_show_original_max_avg_soft(run):
    _, _, output, clip = run
    frames, _, height, _, _ = read_mp4(output / "side_by_side_L1.mp4")
    top = label_frames(np.zeros((1, 4, 8, 3), np.uint8), ["two", "lines"]).shape[1] - 4  # label bar height
    frame = frames[10].astype(np.float64) / 255
    width = clip.width

    def panel(index):
        left = index * (width + 4)
        return frame[top : top + clip.height - 1, left : left + width]

    original = clip.frames[:, 10].permute(1, 2, 0).numpy()[: clip.height - 1]
    assert np.abs(panel(0) - original).mean() < 0.03  # H.264 at crf 18 is close to the source
    # max pooling brightens, SoftPool sits between avg and max
    brightness = [panel(i).mean() for i in range(1, 4)]
    assert brightness[0] > brightness[2] > brightness[1] - 0.005


def test_gif_duration_and_size(run):
    _, _, output, clip = run
    _, mp4_width, mp4_height, _, _ = read_mp4(output / "side_by_side_L1.mp4")
    with Image.open(output / "side_by_side_L1.gif") as gif:
        # gif_width=300 would shrink the 96 px panels below 200 px: the GIF keeps full size instead
        assert gif.size[0] == mp4_width and gif.size[1] in (mp4_height - 1, mp4_height)  # mp4: even sizes
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
        # identical consecutive frames may be merged, the total duration may not change
        assert gif.n_frames <= COVERED[1]
        assert sum(durations) / 1000 == pytest.approx(COVERED[1] / float(FPS), abs=0.011)


def test_contact_sheet_has_a_row_per_method_and_level(run):
    _, _, output, clip = run
    with Image.open(output / "contact_sheet.png") as sheet:
        width, height = sheet.size
    cell_w, cell_h = 160, round(clip.height * 160 / clip.width)
    rows = 1 + 2 * 3  # original, then 3 methods x 2 levels
    assert width == 110 + 3 * (cell_w + 4)
    assert height == 8 + 20 * 3 + 22 + rows * (cell_h + 4)  # 3 title lines, the time header, the rows


def test_contact_sheet_title_names_video_kernel_levels_temperature_and_range(run):
    from softpool_video.visualize.pipeline import _title

    _, _, output, clip = run
    title = " ".join(_title(clip, (2, 2, 2), 2, 1.0))
    for part in ("carphone_pristine.mp4", "2x2x2", "levels 1..2", "temperature 1", "pixel values in ["):
        assert part in title
    with Image.open(output / "contact_sheet.png") as sheet:
        strip = np.asarray(sheet.convert("L"))[6:66, :300]
    assert (strip > 200).sum() > 300  # the title is written (light text on the dark background)


def test_xt_slice_geometry_and_bands(run):
    """One panel for the original and one per (level, method); time runs down, each source frame
    ``stretch`` pixel rows, and a level-l panel changes only every kT**l frames."""
    from softpool_video.visualize.render import xt_row

    _, _, output, clip = run
    with Image.open(output / "xt_slice.png") as image:
        sheet = np.asarray(image.convert("RGB")).astype(int)
    frames = COVERED[2]
    stretch = -(-240 // frames)
    width, axis, gap, label, top = clip.width * 2, 64, 8, 40, 8 + 20 * 3  # 96 px panels grow x2 to 192
    assert sheet.shape[1] == axis + 3 * (width + gap)
    assert sheet.shape[0] == top + 3 * (label + frames * stretch + gap)
    original = sheet[top + label : top + label + frames * stretch, axis : axis + width]
    row = xt_row(clip.frames)
    expected = np.round(clip.frames[:, :frames, row].permute(1, 2, 0).numpy() * 255)
    np.testing.assert_allclose(original[::stretch, ::2], expected, atol=1)  # the source row, frame by frame
    level2 = top + 2 * (label + frames * stretch + gap) + label
    soft_l2 = sheet[
        level2 : level2 + frames * stretch, axis + 2 * (width + gap) : axis + 2 * (width + gap) + width
    ]
    per_frame = soft_l2[::stretch]
    changes = [t for t in range(1, frames) if not np.array_equal(per_frame[t], per_frame[t - 1])]
    assert changes and all(t % 4 == 0 for t in changes)  # level 2 of kT=2: a new picture every 4 frames


def test_retention_csv(run):
    _, _, output, _ = run
    with open(output / "retention.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], int(r["level"])) for r in rows] == [
        (m, lv) for m in ("max", "avg", "soft") for lv in (1, 2)
    ]
    assert {r["video"] for r in rows} == {"carphone_pristine.mp4"}
    assert [(int(r["frames"]), int(r["height"]), int(r["width"])) for r in rows[:2]] == [
        (19, 39, 48),
        (9, 19, 24),
    ]
    metrics = {
        (r["method"], int(r["level"])): {k: float(r[k]) for k in ("psnr_down", "psnr_up", "ssim_up")}
        for r in rows
    }
    # avg pooling is the box filter: identical up to float rounding
    assert math.isinf(metrics["avg", 1]["psnr_down"]) or metrics["avg", 1]["psnr_down"] > 100
    assert metrics["max", 1]["psnr_up"] < metrics["avg", 1]["psnr_up"]
    assert metrics["soft", 2]["psnr_up"] < metrics["soft", 1]["psnr_up"]


def test_write_mp4_pads_odd_sizes_and_keeps_the_rate(tmp_path):
    frames = np.zeros((10, 33, 47, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(10, dtype=np.uint8)[:, None, None] * 20
    decoded, width, height, duration, rate = read_mp4(write_mp4(frames, tmp_path / "odd.mp4", 25))
    assert (width, height, len(decoded), rate) == (48, 34, 10, 25)
    assert duration == pytest.approx(0.4)
    assert abs(int(decoded[5][10, 10, 0]) - 100) <= 4


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_usage_and_argument_errors(capsys, sample_videos, tmp_path):
    video = str(sample_videos["carphone_pristine"])
    assert run_cli(["--help"], capsys)[0] == 0
    code, out, err = run_cli([], capsys)
    assert code == 2 and "no VIDEO given" in err and len(err.splitlines()) == 1
    assert "usage: softpool-visualize VIDEO" in run_cli(["--help"], capsys)[1]
    for argv, message in [
        ([video, "kernal=2"], "unknown option 'kernal'"),
        ([video, "kernel=2,x"], "kernel must be"),
        ([video, "levels=0"], "levels must be an integer >= 1"),
        ([video, "methods=[soft,median]"], "methods: 'median' not among max, avg, soft"),
        ([video, "methods=[soft"], "methods must be a list like methods=[a,b]"),
        ([video, "layer=stem.3"], "layer only applies to mode=features"),
        ([video, "levels=2", "levels=3"], "levels is given twice"),
        ([video, "--levels=2"], "options are key=value, write levels=2"),
        ([video, video], "at most 1 VIDEO expected, got 2"),
        ([video, "levels=9", "max_side=32", f"output={tmp_path}"], "levels=9 with kernel=(2, 2, 2)"),
    ]:
        code, _, err = run_cli(argv, capsys)
        assert code == 2, argv
        assert message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err


def test_cli_unreadable_and_missing_files(capsys, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 500)
    code, _, err = run_cli([str(bad), f"output={tmp_path / 'out'}"], capsys)
    assert code == 1 and "broken.mp4" in err
    assert not (tmp_path / "out").exists()
    # a file that does not exist is a bad argument (exit 2), found before any work
    code, _, err = run_cli([str(tmp_path / "nope.mp4"), f"output={tmp_path / 'out'}"], capsys)
    assert code == 2 and err.count("\n") == 1 and "video=" in err and "nope.mp4: no such file" in err
    code, _, err = run_cli([str(bad), f"output={bad / 'out'}"], capsys)
    assert code == 2 and err.count("\n") == 1 and "output=" in err and "is a file" in err
    assert not (tmp_path / "out").exists()
