"""Video decoding behind one small interface: open a file, read its frame count and rate, decode
only the frames a clip needs.

Backends: ``pyav`` (always available), ``decord``, and ``torchcodec`` when it is installed.
All return the same thing for the same file and frame indices: RGB uint8 frames and their
presentation times::

    with open_video("a.mp4", backend="pyav") as video:
        print(video.info.num_frames, video.info.fps)
        clip = video.decode([0, 8, 16, 24])      # clip.frames: uint8 (4, H, W, 3)

    clip = decode_clip("a.mp4", start_sec=1.0, end_sec=2.0, backend="decord", layout="CTHW")

Any failure to open or decode (missing, zero-byte, truncated, corrupt, not a video) raises
``VideoDecodeError`` naming the file, whatever the backend raised underneath.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

BACKENDS = ("pyav", "decord", "torchcodec")

# A header frame count may exceed what really decodes by a frame or two (rounded durations,
# trailing non-displayed frames); within this margin the last decoded frame is repeated. A
# larger gap means a truncated file and raises.
TAIL_TOLERANCE_FRAMES = 2


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded. ``path`` is the file, ``reason`` what went wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties read from the container header (no decoding).

    ``num_frames`` is the header's count (estimated from duration x fps when the container has
    none, e.g. some AVI/MKV files); ``width``/``height`` are ``None`` when the backend does not
    report them without decoding.
    """

    num_frames: int
    fps: float
    width: int | None = None
    height: int | None = None

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.num_frames / self.fps


class DecodedClip(NamedTuple):
    """Frames of one clip.

    frames: uint8 ``(T, H, W, 3)`` RGB (``(3, T, H, W)`` when decoded with ``layout="CTHW"``).
    times: float64 ``(T,)`` presentation time of each frame in seconds from the first frame.
    indices: int64 ``(T,)`` frame index of each frame (as requested; repeats allowed).
    """

    frames: torch.Tensor
    times: torch.Tensor
    indices: torch.Tensor


def available_backends() -> list[str]:
    """The backends importable in this environment, in preference order."""
    names = ["pyav"]
    for name, module in (("decord", "decord"), ("torchcodec", "torchcodec")):
        if importlib.util.find_spec(module) is not None:
            names.append(name)
    return names


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "pyav" and importlib.util.find_spec(backend) is None:
        raise ValueError(f"backend {backend!r} is not installed (installed: {available_backends()})")
    return backend


class VideoSource:
    """An open video file. Use ``open_video``; close it (or use ``with``) when done."""

    path: Path
    info: VideoInfo

    def decode(self, frame_indices: Sequence[int]) -> DecodedClip:
        """Decode the frames at ``frame_indices`` (any order, repeats allowed) -> ``DecodedClip``.

        Indices must lie in ``[0, info.num_frames)``. Only the needed stretch of the stream is
        decoded (seek to the keyframe before the first index, stop after the last).
        """
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            raise ValueError("frame_indices is empty")
        if indices.min() < 0 or indices.max() >= self.info.num_frames:
            raise ValueError(
                f"frame_indices must lie in [0, {self.info.num_frames}) for {self.path}, "
                f"got [{indices.min()}, {indices.max()}]"
            )
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            frames, times = self._decode_sorted(unique)
        except VideoDecodeError:
            raise
        except Exception as err:  # every backend has its own error zoo; callers need one type
            raise VideoDecodeError(self.path, f"decoding failed: {type(err).__name__}: {err}") from err
        inverse_t = torch.from_numpy(inverse.astype(np.int64))
        return DecodedClip(frames[inverse_t], times[inverse_t], torch.from_numpy(indices.copy()))

    def _decode_sorted(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode sorted unique ``indices`` -> uint8 (N, H, W, 3), float64 (N,) seconds."""
        raise NotImplementedError

    def count_decodable_frames(self, chunk: int = 32) -> int:
        """Decode the whole stream once and return how many frames decoded (for integrity checks).

        Raises ``VideoDecodeError`` on a decoding error. The default walks the stream in chunks
        of ``decode``; backends with a cheaper sequential path override it.
        """
        count = 0
        for start in range(0, self.info.num_frames, chunk):
            count += len(self.decode(range(start, min(start + chunk, self.info.num_frames))).frames)
        return count

    def close(self) -> None:
        pass

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fill_missing(
    path: Path,
    indices: np.ndarray,
    decoded: dict[int, tuple[np.ndarray, float]],
    last_seen: int,
    header_frames: int,
) -> None:
    """Give every requested index that no decoded frame matched the nearest earlier decoded frame.

    Happens at the end of a stream a frame or two shorter than its header says, and inside
    variable-frame-rate streams whose timestamps skip an index. A stream that ends well before
    the header's count is truncated: that raises.
    """
    missing = [int(k) for k in indices if int(k) not in decoded]
    if not missing:
        return
    if not decoded:
        raise VideoDecodeError(path, "no frame could be decoded")
    if missing[-1] > last_seen and header_frames - 1 - last_seen > TAIL_TOLERANCE_FRAMES:
        raise VideoDecodeError(
            path,
            f"stream ended at frame {last_seen} but frame {missing[-1]} was requested "
            f"(header says {header_frames} frames): truncated file?",
        )
    keys = np.array(sorted(decoded))
    for k in missing:
        position = max(int(np.searchsorted(keys, k, side="right")) - 1, 0)
        decoded[k] = decoded[int(keys[position])]


class _PyAVSource(VideoSource):
    def __init__(self, path: Path, threads: int):
        import av

        self.path = path
        try:
            self._container = av.open(str(path), metadata_errors="ignore")
        except Exception as err:
            raise VideoDecodeError(path, f"cannot open: {type(err).__name__}: {err}") from err
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            stream = self._container.streams.video[0]
            if threads != 1:
                # frame+slice threading; 0 lets FFmpeg pick one thread per core
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = threads
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            if not fps > 0:
                raise VideoDecodeError(path, "the video stream has no frame rate")
            self._stream = stream
            self._time_base = float(stream.time_base)
            self._start_pts = stream.start_time or 0
            num_frames = stream.frames
            if num_frames <= 0:  # AVI/MKV/WebM often have no count: estimate from the duration
                if stream.duration:
                    seconds = stream.duration * self._time_base
                elif self._container.duration:
                    seconds = self._container.duration / 1_000_000
                else:
                    raise VideoDecodeError(path, "the container reports neither a frame count nor a duration")
                num_frames = round(seconds * fps)
            if num_frames <= 0:
                raise VideoDecodeError(path, "the video stream has no frames")
            self.info = VideoInfo(int(num_frames), fps, stream.width or None, stream.height or None)
            self._fresh = True  # nothing decoded yet: the demuxer sits at the first packet
        except BaseException:
            self._container.close()
            raise

    def _index_of(self, frame, previous: int) -> int:
        if frame.pts is None:  # rare (some AVI): count from the previous frame
            return previous + 1
        return round((frame.pts - self._start_pts) * self._time_base * self.info.fps)

    def _decode_sorted(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        wanted = {int(k) for k in indices}
        first, last = int(indices[0]), int(indices[-1])
        start_time = self._start_pts * self._time_base
        for attempt in range(2):
            # Seek backward to the keyframe before the first wanted frame; if the demuxer's index
            # is off and we land after it, start again from the beginning of the stream.
            seek_index = first if attempt == 0 else 0
            if not self._fresh or seek_index > 0:
                target = self._start_pts + int(seek_index / self.info.fps / self._time_base)
                self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            self._fresh = False
            decoded: dict[int, tuple[np.ndarray, float]] = {}
            last_seen = -1 if seek_index == 0 else None
            restart = False
            for frame in self._container.decode(self._stream):
                index = self._index_of(frame, last_seen if last_seen is not None else -1)
                if last_seen is None and index > first:
                    restart = True
                    break
                last_seen = index
                if index in wanted and index not in decoded:
                    # RGB conversion only for the frames we keep: the main saving over decoding
                    # every frame of the clip's time span
                    time = frame.time if frame.time is not None else start_time + index / self.info.fps
                    decoded[index] = (frame.to_ndarray(format="rgb24"), float(time))
                if index >= last:
                    break
            if not restart:
                break
        else:
            raise VideoDecodeError(self.path, f"seeking to frame {first} failed")
        _fill_missing(
            self.path, indices, decoded, -1 if last_seen is None else last_seen, self.info.num_frames
        )
        frames = np.stack([decoded[int(k)][0] for k in indices])
        times = np.array([decoded[int(k)][1] - start_time for k in indices], dtype=np.float64)
        return torch.from_numpy(frames), torch.from_numpy(times)

    def count_decodable_frames(self, chunk: int = 32) -> int:
        # one sequential pass without RGB conversion: the decoder itself reports bad data
        try:
            self._container.seek(self._start_pts, stream=self._stream, backward=True, any_frame=False)
            self._fresh = False
            return sum(1 for _ in self._container.decode(self._stream))
        except Exception as err:
            raise VideoDecodeError(self.path, f"decoding failed: {type(err).__name__}: {err}") from err

    def close(self) -> None:
        self._container.close()


_DECORD_QUIET = False


class _DecordSource(VideoSource):
    def __init__(self, path: Path, threads: int):
        global _DECORD_QUIET
        import decord

        if not _DECORD_QUIET:
            # decord prints every open error to stderr; we raise VideoDecodeError instead
            decord.logging.set_level(decord.logging.QUIET)
            _DECORD_QUIET = True
        self.path = path
        try:
            self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
            num_frames, fps = len(self._reader), float(self._reader.get_avg_fps())
        except Exception as err:
            raise VideoDecodeError(path, f"cannot open: {type(err).__name__}: {err}") from err
        if num_frames <= 0:
            raise VideoDecodeError(path, "the video stream has no frames")
        if not fps > 0:
            raise VideoDecodeError(path, "the video stream has no frame rate")
        self.info = VideoInfo(num_frames, fps)

    def _decode_sorted(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._reader.get_batch(indices.tolist())
        # decord's output type follows a process-wide "bridge" that other libraries (pytorchvideo)
        # switch to torch on import, so accept both
        frames = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch.asnumpy())
        times = np.asarray(self._reader.get_frame_timestamp(indices.tolist()), dtype=np.float64).reshape(
            -1, 2
        )[:, 0]
        return frames.to(torch.uint8), torch.from_numpy(times.copy())

    def close(self) -> None:
        self._reader = None


class _TorchCodecSource(VideoSource):
    def __init__(self, path: Path, threads: int):
        from torchcodec.decoders import VideoDecoder

        self.path = path
        try:
            self._decoder = VideoDecoder(
                str(path), dimension_order="NHWC", num_ffmpeg_threads=threads, seek_mode="exact"
            )
            metadata = self._decoder.metadata
            num_frames = int(metadata.num_frames or len(self._decoder))
            fps = float(metadata.average_fps or 0.0)
        except Exception as err:
            raise VideoDecodeError(path, f"cannot open: {type(err).__name__}: {err}") from err
        if num_frames <= 0 or not fps > 0:
            raise VideoDecodeError(path, "the video stream has no frames or no frame rate")
        self.info = VideoInfo(
            num_frames, fps, getattr(metadata, "width", None), getattr(metadata, "height", None)
        )

    def _decode_sorted(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._decoder.get_frames_at(indices.tolist())
        return batch.data.contiguous(), batch.pts_seconds.to(torch.float64)

    def close(self) -> None:
        self._decoder = None


_SOURCES = {"pyav": _PyAVSource, "decord": _DecordSource, "torchcodec": _TorchCodecSource}


def open_video(path: str | Path, backend: str = "pyav", threads: int = 1) -> VideoSource:
    """Open ``path`` with ``backend``; ``threads`` decoder threads (0 = one per core).

    Raises ``VideoDecodeError`` if the file is missing, empty or not a readable video.
    """
    backend = _check_backend(backend)
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    path = Path(path)
    if not path.exists():
        raise VideoDecodeError(path, "file does not exist")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return _SOURCES[backend](path, threads)


def decode_clip(
    path: str | Path,
    frame_indices: Sequence[int] | None = None,
    *,
    start_sec: float | None = None,
    end_sec: float | None = None,
    backend: str = "pyav",
    threads: int = 1,
    layout: str = "THWC",
) -> DecodedClip:
    """Decode some frames of one video.

    Give either ``frame_indices`` or a time range ``[start_sec, end_sec)`` (every frame whose
    nominal time ``index / fps`` falls inside; ``end_sec=None`` means to the end); nothing
    selects the whole video. ``layout`` ``"THWC"`` gives frames uint8 ``(T, H, W, 3)``,
    ``"CTHW"`` gives ``(3, T, H, W)``.
    """
    if layout not in ("THWC", "CTHW"):
        raise ValueError(f"layout must be 'THWC' or 'CTHW', got {layout!r}")
    if frame_indices is not None and (start_sec is not None or end_sec is not None):
        raise ValueError("pass frame_indices or start_sec/end_sec, not both")
    with open_video(path, backend=backend, threads=threads) as video:
        n, fps = video.info.num_frames, video.info.fps
        if frame_indices is None:
            first = 0 if start_sec is None else max(0, math.ceil(start_sec * fps - 1e-6))
            stop = n if end_sec is None else min(n, math.ceil(end_sec * fps - 1e-6))
            if stop <= first:
                raise ValueError(
                    f"no frame of {path} ({n} frames at {fps:g} fps) in [{start_sec}, {end_sec}) s"
                )
            frame_indices = range(first, stop)
        clip = video.decode(frame_indices)
    if layout == "CTHW":
        clip = clip._replace(frames=clip.frames.permute(3, 0, 1, 2))
    return clip
