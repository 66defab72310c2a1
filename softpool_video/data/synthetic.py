"""Synthetic motion dataset: small, real, encoded videos whose class is their motion.

Each video shows one irregular polygon (the "actor", with a contrasting dot so that its
orientation is visible) over a textured, cluttered background with sensor noise. The class
is the actor's motion; its shape, colours, size, position, speed and the background are random,
so no single frame tells the class::

    MoveLeft MoveRight MoveUp MoveDown        translation at 0.8-1.2 px/frame
    RotateCW RotateCCW                        rotation at 4-6 degrees/frame
    Grow Shrink                               size x1.7-2.0 over the video
    BounceHorizontal BounceVertical           back and forth, period 14-18 frames (opt-in: the
                                              default ``num_classes=8`` leaves them out)

(speeds for the default 64x64 frames; they scale with ``size``). Motions are slow enough that
consecutive frames of a clip sampled every 2nd frame move the actor 1-3 px, the range a 3x3x3
convolution sees.

Learnable on a CPU: ``r2plus1d_tiny`` (0.45 M parameters) trained from scratch on the default
set (clips of 8 frames taken every 2nd frame, 64x64, batch 16, AdamW, one-cycle schedule peaking
at 3e-3) reached 82% video top-1 on split 1's test videos after 600 steps and 89% after 1000.

Horizontal flips turn MoveLeft into MoveRight and RotateCW into RotateCCW: train without them
(``conf/data/synthetic.yaml`` sets ``hflip_prob: 0``).

Layouts written under ``root`` (both describe the same videos):

- UCF-101 style: ``classInd.txt``, ``trainlist0{1,2,3}.txt``, ``testlist0{1,2,3}.txt`` and
  ``<Class>/v_<Class>_gXX_cYY.mp4``. As in UCF-101, the clips of one group share a scene
  (background and actor), and splits hold out whole groups, so test scenes are unseen.
  Every fifth video is an MPEG-4 ``.avi`` instead of an H.264 ``.mp4``.
- Kinetics style (``kinetics=True``): ``kinetics/annotations/{train,validate}.csv`` (split 1)
  and ``kinetics/{train,val}/<label>/{youtube_id}_{start:06d}_{end:06d}.<ext>`` (hard links).

Everything is deterministic given ``seed``: the same arguments give byte-identical files.
Command line: ``softpool-synth [ROOT] [key=value ...]`` (``--help``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

GENERATOR_VERSION = 1
MOTIONS = (
    "MoveLeft",
    "MoveRight",
    "MoveUp",
    "MoveDown",
    "RotateCW",
    "RotateCCW",
    "Grow",
    "Shrink",
    "BounceHorizontal",
    "BounceVertical",
)
INFO_FILE = "synthetic.json"
_SUPERSAMPLE = 3  # draw at 3x and downscale: anti-aliased edges, sub-pixel motion
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class SyntheticParams:
    """Arguments of ``generate_synthetic_dataset`` that determine its content."""

    num_classes: int = 8
    videos_per_class: int = 50
    frames: int = 20
    size: int = 64
    fps: int = 10
    seed: int = 0
    test_fraction: float = 0.2
    clips_per_group: int = 2
    kinetics: bool = True

    def check(self) -> None:
        if not 2 <= self.num_classes <= len(MOTIONS):
            raise ValueError(f"num_classes must be in [2, {len(MOTIONS)}], got {self.num_classes}")
        if self.clips_per_group < 1:
            raise ValueError(f"clips_per_group must be >= 1, got {self.clips_per_group}")
        if self.videos_per_class < 2 * self.clips_per_group:
            raise ValueError(
                f"videos_per_class must be >= 2 * clips_per_group = {2 * self.clips_per_group} "
                f"(at least one train and one test group), got {self.videos_per_class}"
            )
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if self.size < 32 or self.size % 2:
            raise ValueError(
                f"size must be an even number >= 32 (H.264 4:2:0 needs even sizes), got {self.size}"
            )
        if self.fps < 1:
            raise ValueError(f"fps must be >= 1, got {self.fps}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    @property
    def num_groups(self) -> int:
        return math.ceil(self.videos_per_class / self.clips_per_group)

    def test_groups(self, split: int) -> set[int]:
        """1-based groups held out for testing in official split ``split`` (1, 2 or 3)."""
        count = min(max(1, round(self.num_groups * self.test_fraction)), self.num_groups - 1)
        return {((split - 1) * count + k) % self.num_groups + 1 for k in range(count)}


def class_names(num_classes: int = len(MOTIONS)) -> list[str]:
    """UCF-style class names of the first ``num_classes`` motions."""
    return list(MOTIONS[:num_classes])


def kinetics_label(name: str) -> str:
    """``MoveLeft`` -> ``move left``; ``RotateCW`` -> ``rotate cw`` (Kinetics-style label)."""
    words, current = [], ""
    for char in name:
        if char.isupper() and current and not current[-1].isupper():
            words.append(current)
            current = ""
        current += char
    words.append(current)
    return " ".join(w.lower() for w in words)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoJob:
    label: int
    group: int
    clip: int
    relative_path: str  # under root, UCF-style
    params: SyntheticParams


def _contrasting_colour(rng: np.random.Generator, background_luma: float) -> np.ndarray:
    """A saturated colour whose brightness is far from the background's."""
    hue = rng.uniform(0, 1)
    rgb = np.array([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)]).clip(0, 1)
    rgb = 0.25 + 0.75 * rgb * rng.uniform(0.6, 1.0)
    luma = float(rgb @ [0.299, 0.587, 0.114])
    target = rng.uniform(0.05, 0.3) if background_luma > 0.5 else rng.uniform(0.7, 0.95)
    return (rgb * target / max(luma, 1e-3)).clip(0, 1)


def _scene(params: SyntheticParams, label: int, group: int):
    """Background image (float RGB in [0, 1], supersampled) and actor appearance of one group."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([params.seed, 1, label, group])
    size = params.size * _SUPERSAMPLE
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy + 1.5) / 3
    colour_a, colour_b = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    background = colour_a + (colour_b - colour_a) * ramp[..., None]
    # blotchy low-frequency texture
    coarse = rng.uniform(-1, 1, (6, 6)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC))
    background += rng.uniform(0.04, 0.12) * texture[..., None]
    # faint stripes
    frequency, direction = rng.uniform(4, 12), rng.uniform(0, np.pi)
    stripes = np.sin(2 * np.pi * frequency * (np.cos(direction) * xx + np.sin(direction) * yy))
    background += rng.uniform(0.0, 0.06) * stripes[..., None]
    image = Image.fromarray((background.clip(0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):  # static clutter
        cx, cy = rng.uniform(0, size, 2)
        radius = rng.uniform(0.03, 0.08) * size
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.uniform() < 0.5:
            draw.ellipse(
                [cx - radius, cy - radius, cx + radius, cy + radius * rng.uniform(0.5, 1.5)], fill=fill
            )
        else:
            draw.rectangle([cx - radius, cy - radius * 0.5, cx + radius, cy + radius * 0.5], fill=fill)
    background = np.asarray(image, dtype=np.float32) / 255
    luma = float(background.mean(axis=(0, 1)) @ [0.299, 0.587, 0.114])
    num_vertices = int(rng.integers(5, 9))
    actor = {
        "angles": np.sort(rng.uniform(0, 2 * np.pi, num_vertices)),
        "radii": rng.uniform(0.55, 1.0, num_vertices),
        "fill": _contrasting_colour(rng, luma),
        "dot_angle": rng.uniform(0, 2 * np.pi),
    }
    actor["dot"] = 1.0 - actor["fill"]
    return background, actor


def _trajectory(params: SyntheticParams, motion: str, rng: np.random.Generator):
    """Per-frame centre x, y (pixels), radius (pixels) and orientation (radians) of the actor."""
    frames, size = params.frames, params.size
    t = np.arange(frames, dtype=np.float64)
    radius = np.full(frames, rng.uniform(10.0, 14.0) * size / 64)
    if motion in ("Grow", "Shrink"):
        start, factor = rng.uniform(7.0, 9.0) * size / 64, rng.uniform(1.7, 2.0)
        radius = start * factor ** (t / (frames - 1))
        if motion == "Shrink":
            radius = radius[::-1].copy()
    # orientation: a slow random drift, or the class-defining spin (+ = clockwise on screen,
    # since image y points down)
    spin = np.deg2rad(rng.uniform(4.0, 6.0))
    omega = {"RotateCW": spin, "RotateCCW": -spin}.get(motion, np.deg2rad(rng.uniform(-1.0, 1.0)))
    theta = rng.uniform(0, 2 * np.pi) + omega * t
    margin = float(radius.max()) * 0.8
    drift = rng.uniform(-0.15, 0.15, 2)  # every actor wanders a little
    x = rng.uniform(margin, size - margin) + drift[0] * (t - t.mean())
    y = rng.uniform(margin, size - margin) + drift[1] * (t - t.mean())
    if motion.startswith("Move"):
        direction = {"MoveLeft": (-1, 0), "MoveRight": (1, 0), "MoveUp": (0, -1), "MoveDown": (0, 1)}[motion]
        room = size - 2 * margin
        speed = min(rng.uniform(0.8, 1.2) * size / 64, room / (frames - 1))
        travel = speed * (frames - 1)
        begin = rng.uniform(margin, size - margin - travel) if room > travel else margin
        path = begin + speed * t
        if direction[0]:
            x = path if direction[0] > 0 else size - path
        else:
            y = path if direction[1] > 0 else size - path
    elif motion.startswith("Bounce"):
        amplitude = rng.uniform(4.0, 6.0) * size / 64
        period = rng.uniform(14.0, 18.0)
        offset = amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        if motion == "BounceHorizontal":
            x = rng.uniform(margin + amplitude, size - margin - amplitude) + offset
        else:
            y = rng.uniform(margin + amplitude, size - margin - amplitude) + offset
    return x, y, radius, theta


def render_video(
    params: SyntheticParams, label: int, group: int, clip: int, draw_actor: bool = True
) -> np.ndarray:
    """uint8 ``(frames, size, size, 3)`` RGB frames of video ``(label, group, clip)``.

    ``draw_actor=False`` renders the very same frames (background, noise) without the actor,
    so that ``frames != background`` is exactly where the actor is (used by the tests).
    """
    from PIL import Image, ImageDraw

    background, actor = _scene(params, label, group)
    rng = np.random.default_rng([params.seed, 2, label, group, clip])
    x, y, radius, theta = _trajectory(params, MOTIONS[label], rng)
    scale = _SUPERSAMPLE
    base = Image.fromarray((background * 255).astype(np.uint8))
    fill = tuple(int(v * 255) for v in actor["fill"])
    dot = tuple(int(v * 255) for v in actor["dot"])
    brightness = rng.uniform(0.85, 1.15)
    noise_sigma = rng.uniform(1.0, 5.0)
    out = np.empty((params.frames, params.size, params.size, 3), dtype=np.uint8)
    for k in range(params.frames):
        image = base.copy()
        draw = ImageDraw.Draw(image)
        angles = actor["angles"] + theta[k]
        points = [
            ((x[k] + radius[k] * r * np.cos(a)) * scale, (y[k] + radius[k] * r * np.sin(a)) * scale)
            for a, r in zip(angles, actor["radii"])
        ]
        if draw_actor:
            draw.polygon(points, fill=fill)
        dot_x = x[k] + 0.45 * radius[k] * np.cos(actor["dot_angle"] + theta[k])
        dot_y = y[k] + 0.45 * radius[k] * np.sin(actor["dot_angle"] + theta[k])
        dot_r = max(1.2, 0.22 * radius[k])
        if draw_actor:
            box = [
                (dot_x - dot_r) * scale,
                (dot_y - dot_r) * scale,
                (dot_x + dot_r) * scale,
                (dot_y + dot_r) * scale,
            ]
            draw.ellipse(box, fill=dot)
        frame = np.asarray(image.resize((params.size, params.size), Image.BOX), dtype=np.float32)
        frame = frame * brightness + rng.normal(0.0, noise_sigma, frame.shape)
        out[k] = frame.clip(0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# Encoding and layout
# --------------------------------------------------------------------------------------------


def write_video(path: str | Path, frames: np.ndarray, fps: int, codec: str | None = None) -> None:
    """Encode uint8 ``(T, H, W, 3)`` frames (even H and W): H.264 for ``.mp4``/``.mkv``, MPEG-4
    part 2 for ``.avi``.

    Single-threaded encoders without x264's adaptive lookahead, so the bytes are reproducible
    (with the lookahead, about one H.264 file in five came out different from run to run).
    """
    import av

    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frames must be (T, H, W, 3) with even H and W, got {frames.shape}")
    codec = codec or ("mpeg4" if path.suffix.lower() == ".avi" else "libx264")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = 8  # a few keyframes per video, so seeking is exercised
        if codec == "libx264":
            stream.options = {
                "crf": "18",
                "preset": "veryfast",
                "threads": "1",
                # fixed B-frame pattern (3 B-frames, so decoders still reorder) and no mbtree
                "x264-params": "rc-lookahead=0:b-adapt=0:no-mbtree=1",
            }
        else:
            stream.codec_context.bit_rate = 1_500_000
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = index
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_job(root: Path, job: _VideoJob) -> None:
    frames = render_video(job.params, job.label, job.group, job.clip)
    path = root / job.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, job.params.fps)


def _run_job(args: tuple[Path, _VideoJob]) -> str:
    _write_job(*args)
    return args[1].relative_path


def _jobs(params: SyntheticParams) -> list[_VideoJob]:
    jobs = []
    for label, name in enumerate(class_names(params.num_classes)):
        for number in range(params.videos_per_class):
            group, clip = divmod(number, params.clips_per_group)
            extension = ".avi" if number % 5 == 4 else ".mp4"
            relative = f"{name}/v_{name}_g{group + 1:02d}_c{clip + 1:02d}{extension}"
            jobs.append(_VideoJob(label, group + 1, clip + 1, relative, params))
    return jobs


def _youtube_id(params: SyntheticParams, job: _VideoJob) -> tuple[str, int, int]:
    rng = np.random.default_rng([params.seed, 3, job.label, job.group, job.clip])
    youtube_id = "".join(_ID_ALPHABET[k] for k in rng.integers(0, len(_ID_ALPHABET), 11))
    start = int(rng.integers(0, 290))
    return youtube_id, start, start + 10


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_layouts(root: Path, params: SyntheticParams, jobs: list[_VideoJob]) -> None:
    names = class_names(params.num_classes)
    (root / "classInd.txt").write_text("".join(f"{k + 1} {name}\n" for k, name in enumerate(names)))
    for split in (1, 2, 3):
        held_out = params.test_groups(split)
        train = [j for j in jobs if j.group not in held_out]
        test = [j for j in jobs if j.group in held_out]
        (root / f"trainlist{split:02d}.txt").write_text(
            "".join(f"{j.relative_path} {j.label + 1}\n" for j in train)
        )
        (root / f"testlist{split:02d}.txt").write_text("".join(f"{j.relative_path}\n" for j in test))
    if not params.kinetics:
        return
    held_out = params.test_groups(1)
    annotations = root / "kinetics" / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    for csv_name, split_dir, subset in (("train.csv", "train", "train"), ("validate.csv", "val", "val")):
        chosen = [j for j in jobs if (j.group in held_out) == (subset == "val")]
        with open(annotations / csv_name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for job in chosen:
                youtube_id, start, end = _youtube_id(params, job)
                label = kinetics_label(names[job.label])
                writer.writerow([label, youtube_id, start, end, subset])
                extension = Path(job.relative_path).suffix
                target = (
                    root / "kinetics" / split_dir / label / f"{youtube_id}_{start:06d}_{end:06d}{extension}"
                )
                _link_or_copy(root / job.relative_path, target)


def generate_synthetic_dataset(
    root: str | Path,
    num_classes: int = 8,
    videos_per_class: int = 50,
    frames: int = 20,
    size: int = 64,
    fps: int = 10,
    seed: int = 0,
    test_fraction: float = 0.2,
    clips_per_group: int = 2,
    kinetics: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write the synthetic motion dataset to ``root`` and return ``root`` (see the module docstring).

    Args:
        num_classes: first ``num_classes`` of ``MOTIONS`` (2-10).
        videos_per_class: videos per class, in groups of ``clips_per_group`` sharing a scene.
        frames, size, fps: every video is ``frames`` frames of ``size x size`` pixels at ``fps``.
        seed: the same seed gives the same bytes.
        test_fraction: share of each class's groups held out by each of the 3 splits.
        kinetics: also write the Kinetics-style CSVs and file names (hard links).
        workers: processes rendering and encoding in parallel.
        overwrite: replace an existing synthetic dataset at ``root`` (never any other directory).
        progress: show a progress bar.

    The files appear at ``root`` atomically (written to a temporary sibling, then renamed), so a
    run that is interrupted, or several processes generating at once, never leave a half dataset.
    """
    params = SyntheticParams(
        num_classes, videos_per_class, frames, size, fps, seed, test_fraction, clips_per_group, kinetics
    )
    params.check()
    root = Path(root).expanduser().absolute()
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{root} exists and is not empty: pass overwrite=True (softpool-synth overwrite=true) "
                "to replace it"
            )
        if not (root / INFO_FILE).is_file():
            raise FileExistsError(
                f"{root} is not a synthetic dataset (no {INFO_FILE}); refusing to overwrite it"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        jobs = _jobs(params)
        _render_all(staging, jobs, workers, progress)
        _write_layouts(staging, params, jobs)
        info = {
            "generator": "softpool_video.data.synthetic",
            "version": GENERATOR_VERSION,
            "params": asdict(params),
            "classes": class_names(num_classes),
            "num_videos": len(jobs),
        }
        (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if root.exists() and overwrite:
            shutil.rmtree(root)
        try:
            os.replace(staging, root)  # atomic; fails if another process filled root meanwhile
        except OSError as err:
            raise FileExistsError(f"{root} was filled by another process while generating") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _render_all(root: Path, jobs: list[_VideoJob], workers: int, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _write_job(root, job)
            bar.update()
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_run_job, [(root, job) for job in jobs], chunksize=8):
                bar.update()
    bar.close()


def ensure_synthetic_dataset(root: str | Path, **kwargs) -> Path:
    """Generate the dataset at ``root`` unless it is already there with the same parameters.

    Used by ``build_dataset`` where ``data.generate`` allows it; ``kwargs`` are those of
    ``generate_synthetic_dataset`` (``data.synthetic``). A directory holding something else, or
    a synthetic dataset made with other parameters, raises instead of being replaced.
    """
    root = Path(root).expanduser().absolute()
    options = {k: kwargs.pop(k) for k in ("workers", "progress") if k in kwargs}
    params = SyntheticParams(**kwargs)
    info_path = root / INFO_FILE
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("params") == asdict(params) and info.get("version") == GENERATOR_VERSION:
            return root
        raise FileExistsError(
            f"data.root={root} holds a synthetic dataset made with {info.get('params')} (version "
            f"{info.get('version')}), not {asdict(params)}: delete it or choose another data.root"
        )
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"data.root={root} is not empty and holds no synthetic dataset ({INFO_FILE})")
    try:
        return generate_synthetic_dataset(root, **asdict(params), **options)
    except FileExistsError:
        if info_path.is_file():  # another process (e.g. another rank) finished first
            return ensure_synthetic_dataset(root, **kwargs, **options)
        raise


def _command() -> Any:
    from softpool_video import cli
    from softpool_video.constants import SYNTHETIC_DEFAULT_ROOT

    defaults = SyntheticParams()
    option = cli.Option
    return cli.Command(
        prog="softpool-synth",
        summary="Write the synthetic motion video dataset (UCF-101 and Kinetics layouts) to ROOT.",
        options={
            "root": option(
                SYNTHETIC_DEFAULT_ROOT, cli.path(optional=False), "output folder (or give it first)"
            ),
            "num_classes": option(
                defaults.num_classes, cli.integer(2, len(MOTIONS)), f"classes, 2-{len(MOTIONS)}"
            ),
            "videos_per_class": option(defaults.videos_per_class, cli.integer(1), "videos per class"),
            "frames": option(defaults.frames, cli.integer(1), "frames per video"),
            "size": option(defaults.size, cli.integer(8), "frame width and height"),
            "fps": option(defaults.fps, cli.integer(1), "frames per second"),
            "seed": option(defaults.seed, cli.integer(0), "the same seed gives the same bytes"),
            "test_fraction": option(
                defaults.test_fraction, cli.number(positive=True), "share held out per split"
            ),
            "clips_per_group": option(defaults.clips_per_group, cli.integer(1), "videos sharing a scene"),
            "kinetics": option(True, cli.boolean(), "also write the Kinetics-style copy (hard links)"),
            "workers": option(1, cli.integer(1), "parallel processes"),
            "overwrite": option(
                False, cli.boolean(), "replace an existing synthetic dataset (never anything else)"
            ),
        },
        positionals=cli.Positionals("ROOT", maximum=1),
        usage_line="[ROOT] [key=value ...]",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``softpool-synth [ROOT] [key=value ...]``: write the synthetic motion dataset."""
    from softpool_video import cli

    return cli.run(_command(), _main, argv, usage_errors=(FileExistsError,))


def _main(args: Any) -> int:
    from softpool_video import cli

    root = args.root
    if args.positionals:
        if "root" in args.given:
            raise cli.UsageError(f"two roots given: {args.positionals[0]!r} and root={args.root}")
        root = args.positionals[0]
    cli.writable_folder("root", root)  # a file or a read-only place is a bad argument, found first
    started = time.perf_counter()
    try:
        SyntheticParams(
            args.num_classes,
            args.videos_per_class,
            args.frames,
            args.size,
            args.fps,
            args.seed,
            args.test_fraction,
            args.clips_per_group,
            args.kinetics,
        ).check()
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    count = args.num_classes * args.videos_per_class
    root = generate_synthetic_dataset(
        root,
        num_classes=args.num_classes,
        videos_per_class=args.videos_per_class,
        frames=args.frames,
        size=args.size,
        fps=args.fps,
        seed=args.seed,
        test_fraction=args.test_fraction,
        clips_per_group=args.clips_per_group,
        kinetics=args.kinetics,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=sys.stderr.isatty(),
    )
    print(
        f"wrote {count} videos of {args.num_classes} classes to {root} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
