"""The project's one video decoder: open a file, read its frame count and timeline, decode only
the frames a clip needs. Training, evaluation, prediction, visualisation and the benchmarks all
decode through this module.

**Frame k is the k-th frame in presentation order, and its time is its real presentation
timestamp** (see ``frame_index.py``). Every backend returns exactly those frames for the same
indices, and the same times (taken from the index, not from the backend)::

    with open_video("a.mp4", backend="pyav") as video:
        print(video.info.num_frames, video.info.fps, video.info.variable_frame_rate)
        clip = video.decode([0, 8, 16, 24])      # clip.frames: uint8 (4, H, W, 3)
        clip.times                               # float64 (4,) presentation times in seconds

    clip = decode_clip("a.mp4", start_sec=1.0, end_sec=2.0, backend="torchcodec", layout="CTHW")

Backends:

- ``pyav``: always installed. Seeks to the keyframe before a frame and matches the decoded
  frames to the index by their timestamps; checks that they come out consecutively. On streams
  whose timestamps cannot be trusted (DivX/XviD packed B-frames, missing timestamps) it counts
  frames from the start of the stream instead, which is exact.
- ``torchcodec``: seeks by the presentation timestamps of its own exact scan; every batch's
  timestamps are checked against the index.
- ``decord``: fast, but unmaintained since 2022 and wrong on some files: after seeking in AVI
  files with B-frames and in open-GOP streams it returns other frames than asked for (and, in
  AVI, absurd timestamps). Its frame count and timestamps are checked against the index on open.

A backend that cannot be exact on a file is detected (from the index, on open, or from the
timestamps it returns) and the file is decoded with ``pyav`` instead, with one log line; no
backend ever hands out a frame other than the one asked for.

Any failure to open or decode (missing, zero-byte, truncated, corrupt, not a video) raises
``VideoDecodeError`` naming the file, whatever the backend raised underneath.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from softpool_video.constants import DECODERS
from softpool_video.data.frame_index import (
    TRUNCATION_TOLERANCE_FRAMES,
    FrameIndex,
    VideoDecodeError,
    cached_frame_index,
    check_video_file,
    frame_index,
    index_by_decoding,
    open_container,
    readable_error,
)

logger = logging.getLogger(__name__)

#: The decoding back-ends: one list, ``softpool_video.constants.DECODERS``.
BACKENDS = DECODERS
# Measured with `softpool-bench data` (README, "Decoding" and "Speed"): no backend is consistently
# faster on training's clip loads; pyav is the one that is exact on every file (the others hand it
# the files they get wrong) and the only one that is always installed.
DEFAULT_BACKEND = "pyav"

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "TRUNCATION_TOLERANCE_FRAMES",
    "DecodedClip",
    "FrameIndex",
    "VideoClip",
    "VideoDecodeError",
    "VideoInfo",
    "VideoSource",
    "available_backends",
    "check_backend",
    "decode_clip",
    "decode_video",
    "open_video",
    "resize_frames",
    "scaled_size",
]


@dataclass(frozen=True)
class VideoInfo:
    """What the frame index knows about a video (no decoding).

    ``num_frames``: frames the file holds; ``fps``: their average rate (``num_frames /
    duration``), equal to the container's rate for constant-frame-rate files; ``start_time``:
    presentation time of frame 0 in seconds; ``duration``: seconds from frame 0 to the end of the
    last frame; ``variable_frame_rate``: whether frame spacing varies; ``nominal_fps``: the rate
    the container states (``None`` if none).
    """

    num_frames: int
    fps: float
    width: int | None = None
    height: int | None = None
    start_time: float = 0.0
    duration: float | None = None
    variable_frame_rate: bool = False
    nominal_fps: float | None = None

    def __post_init__(self):
        if self.duration is None:
            object.__setattr__(self, "duration", self.num_frames / self.fps)

    @classmethod
    def from_index(cls, index: FrameIndex) -> VideoInfo:
        return cls(
            num_frames=index.num_frames,
            fps=index.average_fps,
            width=index.width or None,
            height=index.height or None,
            start_time=index.start_time,
            duration=index.duration,
            variable_frame_rate=index.variable_frame_rate,
            nominal_fps=index.nominal_fps,
        )


class DecodedClip(NamedTuple):
    """Frames of one clip.

    frames: uint8 ``(T, H, W, 3)`` RGB (``(3, T, H, W)`` when decoded with ``layout="CTHW"``).
    times: float64 ``(T,)`` presentation time of each frame in seconds (its real timestamp).
    indices: int64 ``(T,)`` frame index of each frame (as requested; repeats allowed).
    """

    frames: torch.Tensor
    times: torch.Tensor
    indices: torch.Tensor


def available_backends() -> list[str]:
    """The backends importable in this environment, in preference order."""
    names = ["pyav"]
    for name in ("decord", "torchcodec"):
        if importlib.util.find_spec(name) is not None:
            names.append(name)
    return names


_LOAD_ERRORS: dict[str, str | None] = {}


def _load_error(backend: str) -> str | None:
    """Why ``backend`` cannot be imported here (``None`` when it can); checked once per process.

    torchcodec imports only when it finds FFmpeg's shared libraries (``libavcodec`` & co.)."""
    if backend not in _LOAD_ERRORS:
        module = {"decord": "decord", "torchcodec": "torchcodec.decoders"}[backend]
        try:
            importlib.import_module(module)
            _LOAD_ERRORS[backend] = None
        except Exception as err:  # ImportError, or RuntimeError/OSError for missing libraries
            _LOAD_ERRORS[backend] = " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return _LOAD_ERRORS[backend]


def check_backend(backend: str) -> str:
    """``backend`` if it is a known, installed and loadable backend; else ``ValueError`` saying why."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "pyav" and importlib.util.find_spec(backend) is None:
        extra = " (pip install 'softpool_video[torchcodec]')" if backend == "torchcodec" else ""
        raise ValueError(f"backend {backend!r} is not installed{extra} (installed: {available_backends()})")
    if backend != "pyav" and _load_error(backend) is not None:
        hint = (
            "; it needs FFmpeg's shared libraries (Debian/Ubuntu: apt-get install libavcodec59 libavformat59 "
            "libavdevice59 libavfilter8 libavutil57 libswscale6 libswresample4, or any FFmpeg 4-8)"
            if backend == "torchcodec"
            else ""
        )
        raise ValueError(
            f"backend {backend!r} is installed but cannot be loaded: {_load_error(backend)}{hint}"
        )
    return backend


# ------------------------------------------------------------------------------------------------
# readers: one per backend. read(sorted unique indices) -> uint8 (N, H, W, 3)
# ------------------------------------------------------------------------------------------------


class _Unsuitable(Exception):
    """This backend cannot return exact frames of this file (the message says why)."""


class _IndexMismatch(Exception):
    """The decoder's frames do not match the packet index (e.g. pictures that are never shown)."""


class _TimestampsMislead(Exception):
    """Decoded frames carry timestamps that cannot be matched to the index: count instead."""


class _PyAVReader:
    name = "pyav"

    def __init__(self, path: Path, index: FrameIndex, threads: int, container=None, fresh: bool = True):
        self.path, self.index, self.threads = path, index, threads
        self._count_mode = not index.timestamps_reliable
        self._position_of = (
            {int(p): k for k, p in enumerate(index.pts.tolist())} if index.timestamps_reliable else {}
        )
        self._container = None
        self._frames = None  # generator of (index, av.VideoFrame), presentation order
        self._next: int | None = None  # index the generator yields next, once known
        self._seek_slack = 0  # ticks added to seek targets (see _seek_to_keyframe)
        from av.video.reformatter import VideoReformatter

        self._rgb = VideoReformatter()
        self._open(container)
        # a container the index was just read with sits at the end of the file
        self._fresh = fresh

    def _open(self, container=None) -> None:
        self.close()
        self._container = container if container is not None else open_container(self.path)
        try:
            stream = self._container.streams.video[0]
        except Exception as err:
            raise VideoDecodeError(self.path, f"cannot open: {readable_error(err)}") from err
        if self.threads != 1:
            # frame+slice threading; 0 lets FFmpeg pick one thread per core
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
        self._stream = stream
        self._fresh = True  # nothing read yet: the demuxer sits at the first packet

    def read(self, wanted: np.ndarray) -> np.ndarray:
        try:
            frames = [self._frame_at(int(k)) for k in wanted]
        except _TimestampsMislead as why:
            if self._count_mode:
                raise VideoDecodeError(self.path, f"frames cannot be located: {why}") from why
            # what was returned so far may already be mislabelled: start over, counting
            logger.info("%s: %s; counting frames from the start of the stream instead", self.path, why)
            self._count_mode, self._frames, self._next = True, None, None
            frames = [self._frame_at(int(k)) for k in wanted]
        # one reformatter for every frame: it keeps its colour-conversion context, which
        # frame.to_ndarray() builds anew each time (3x slower per 640x272 frame)
        return np.stack([self._rgb.reformat(frame, format="rgb24").to_ndarray() for frame in frames])

    def _frame_at(self, wanted: int):
        for attempt in range(3):
            if not self._can_continue_to(wanted):
                self._start_before(wanted, attempt)
            last = None
            for position, frame in self._frames:
                self._next = position + 1
                last = position
                if position == wanted:
                    return frame
                if position > wanted:
                    break  # the seek landed after the frame: start from an earlier keyframe
            else:
                self._frames = self._next = None
                reached = "no frame" if last is None else f"the last was frame {last}"
                raise VideoDecodeError(
                    self.path,
                    f"frame {wanted} of {self.index.num_frames} never came out of the decoder "
                    f"({reached}): damaged or truncated data",
                )
            self._frames = self._next = None
        raise VideoDecodeError(self.path, f"seeking to frame {wanted} failed")

    def _can_continue_to(self, wanted: int) -> bool:
        if self._frames is None or self._next is None or self._next > wanted:
            return False
        # a keyframe between here and the frame: seeking there skips decoding the stretch
        return self._count_mode or self.index.keyframe_at_or_before(wanted) <= self._next

    def _start_before(self, wanted: int, attempt: int) -> None:
        keyframes = self.index.keyframes
        if self._count_mode or attempt >= 2:
            key = 0
        else:
            position = int(np.searchsorted(keyframes, wanted, side="right")) - 1 - attempt
            key = int(keyframes[position]) if position >= 0 else 0
        if self._frames is not None:
            self._frames.close()
        self._next = None
        if self._count_mode:
            if not self._fresh:
                self._open()  # counting needs the very first packet: reopen rather than seek
            self._fresh = False
            self._next = 0
            self._frames = self._counted()
            return
        if key == 0 and self._fresh:
            packets = self._container.demux(self._stream)
        else:  # frame 0 too: the landing check finds where the seek really went
            packets = self._seek_to_keyframe(key)
        self._fresh = False
        self._frames = self._timestamped(packets)

    def _landing(self, packet) -> int | None:
        """Index of the keyframe ``packet`` starts decoding at (``None`` if it is not one)."""
        if packet is None or packet.pts is None or not packet.is_keyframe:
            return None
        return self._position_of.get(packet.pts)

    def _seek_to_keyframe(self, key: int):
        """Seek so that demuxing starts at keyframe ``key``; returns the packet iterator.

        Some demuxers land a GOP early when asked for a keyframe's own timestamp (MP4s whose
        decode timestamps start below zero search by those): the slack added to the target is
        learned per file, a frame at a time, and never reaches the next keyframe. Landing early
        stays correct (the frames in between are decoded and skipped), only slower.
        """
        target = int(self.index.pts[key])
        later = self.index.keyframes[self.index.keyframes > key]
        room = int(self.index.pts[int(later[0])]) - target - 1 if later.size else 1 << 62
        frame_ticks = max(1, int(round(self.index.frame_duration / float(self.index.time_base))))
        for _ in range(4):
            slack = min(self._seek_slack, room)
            self._container.seek(target + slack, stream=self._stream, backward=True, any_frame=False)
            packets = self._container.demux(self._stream)
            first = next(packets, None)
            landing = self._landing(first)
            if landing is None or landing == key:
                break
            if landing < key and slack < room:
                self._seek_slack = min(room, max(frame_ticks, 2 * self._seek_slack))
            elif landing > key and self._seek_slack > 0:
                self._seek_slack //= 2
            else:
                break
        return itertools.chain([] if first is None else [first], packets)

    def _counted(self):
        # from the start of the stream: decoders emit frames in presentation order
        yield from enumerate(self._container.decode(self._stream))

    def _timestamped(self, packets):
        expected = None  # the index the next trusted frame must have
        started = False
        for packet in packets:
            # decoding starts at a keyframe, or at frame 0 (files whose packets carry no keyframe
            # flags: the first packet of a stream is decodable)
            if (
                expected is None
                and packet.pts is not None
                and packet.size
                and (packet.is_keyframe or self._position_of.get(packet.pts) == 0)
            ):
                expected = self._position_of.get(packet.pts)
                if expected is None:
                    raise _TimestampsMislead(
                        f"the seek landed on a packet with unknown timestamp {packet.pts}"
                    )
            for frame in packet.decode():
                if expected is None:
                    continue  # decoded before any keyframe: references missing
                position = self._position_of.get(frame.pts) if frame.pts is not None else None
                if position is None:
                    raise _TimestampsMislead(
                        f"a decoded frame has timestamp {frame.pts}, which no packet has"
                    )
                if position < expected:
                    if started:
                        raise _TimestampsMislead("decoded frames came out of presentation order")
                    continue  # shown before the keyframe decoding started from: references missing
                if position > expected:
                    raise _IndexMismatch(f"frame {expected} never came out of the decoder")
                started = True
                yield position, frame
                expected += 1

    def count_frames(self) -> int:
        """Decode the whole stream once (no colour conversion); the number of frames it yields."""
        self._open()
        self._fresh = False
        self._frames = self._next = None
        return sum(1 for _ in self._container.decode(self._stream))

    def close(self) -> None:
        if getattr(self, "_frames", None) is not None:
            self._frames.close()
            self._frames = None
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None


def _unsuitable_for_seeking(index: FrameIndex) -> str | None:
    """Why a backend that seeks by its own frame numbering cannot be exact on this file."""
    if not index.timestamps_reliable:
        if index.packed_bframes:
            return "packed B-frames (frames must be counted from the start)"
        return "timestamps that cannot be trusted (frames must be counted from the start)"
    if index.reordered and index.container == "avi":
        return "B-frames in AVI (no presentation timestamps in the container)"
    return None


_DECORD_QUIET = False


class _DecordReader:
    name = "decord"

    @staticmethod
    def unsuitable(index: FrameIndex) -> str | None:
        why = _unsuitable_for_seeking(index)
        if why is None and index.open_gop:
            why = "open GOPs (decord returns other frames after seeking)"
        return why

    def __init__(self, path: Path, index: FrameIndex, threads: int):
        global _DECORD_QUIET
        import decord

        if not _DECORD_QUIET:
            # decord prints every open error to stderr; we raise VideoDecodeError instead
            decord.logging.set_level(decord.logging.QUIET)
            _DECORD_QUIET = True
        try:
            self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
            count = len(self._reader)
        except Exception as err:  # pyav indexed the file, so it may still decode it
            raise _Unsuitable(f"decord cannot open it: {type(err).__name__}: {err}") from err
        if count != index.num_frames:
            raise _Unsuitable(f"decord counts {count} frames, the stream holds {index.num_frames}")
        # decord numbers frames by its own timestamps: they must be ours (up to an offset, which
        # decord subtracts, and float32 rounding)
        stamps = np.asarray(self._reader.get_frame_timestamp(list(range(count))), dtype=np.float64)
        stamps = stamps.reshape(-1, 2)[:, 0]
        ours = index.times - index.times[0]
        tolerance = max(1e-4, 0.25 * float(np.min(np.diff(index.times)))) if count > 1 else 1e-4
        if not np.all(np.abs((stamps - stamps[0]) - ours) <= tolerance):
            raise _Unsuitable("decord's frame timestamps disagree with the stream's")

    def read(self, wanted: np.ndarray) -> np.ndarray:
        batch = self._reader.get_batch(wanted.tolist())
        # decord's output type follows a process-wide "bridge" that other libraries (pytorchvideo)
        # switch to torch on import, so accept both
        return batch.numpy() if isinstance(batch, torch.Tensor) else batch.asnumpy()

    def count_frames(self) -> int:
        count = len(self._reader)
        for start in range(0, count, 32):
            self.read(np.arange(start, min(start + 32, count)))
        return count

    def close(self) -> None:
        self._reader = None


class _TorchCodecReader:
    name = "torchcodec"

    @staticmethod
    def unsuitable(index: FrameIndex) -> str | None:
        return _unsuitable_for_seeking(index)

    def __init__(self, path: Path, index: FrameIndex, threads: int):
        from torchcodec.decoders import VideoDecoder

        self.index = index
        try:
            self._decoder = VideoDecoder(
                str(path), dimension_order="NHWC", num_ffmpeg_threads=threads, seek_mode="exact"
            )
            count = int(self._decoder.metadata.num_frames or 0)
        except Exception as err:  # pyav indexed the file, so it may still decode it
            raise _Unsuitable(f"torchcodec cannot open it: {type(err).__name__}: {err}") from err
        if count != index.num_frames:
            raise _Unsuitable(f"torchcodec counts {count} frames, the stream holds {index.num_frames}")

    def read(self, wanted: np.ndarray) -> np.ndarray:
        batch = self._decoder.get_frames_at(wanted.tolist())
        stamps = batch.pts_seconds.to(torch.float64).numpy()
        expected = self.index.times[wanted]
        if not np.allclose(stamps, expected, rtol=0, atol=1e-6 + 1e-9 * np.abs(expected).max()):
            raise _Unsuitable("torchcodec returned frames with other timestamps than asked for")
        return batch.data.numpy()

    def count_frames(self) -> int:
        count = self.index.num_frames
        for start in range(0, count, 32):
            self._decoder.get_frames_in_range(start, min(start + 32, count))
        return count

    def close(self) -> None:
        self._decoder = None


_READERS = {"decord": _DecordReader, "torchcodec": _TorchCodecReader}
_ROUTED_REASONS: set[tuple[str, str]] = set()


def _log_routed(path: Path, backend: str, reason: str) -> None:
    """One line per routed file: a warning the first time a (backend, reason) occurs in this
    process, debug after that (a dataset of 13,000 AVIs would otherwise fill the log)."""
    key = (backend, reason.split(" (")[0])
    if key not in _ROUTED_REASONS:
        _ROUTED_REASONS.add(key)
        logger.warning(
            "%s cannot return exact frames of %s (%s); it is decoded with pyav "
            "(further files like it are logged at debug level)",
            backend,
            path,
            reason,
        )
    else:
        logger.debug("%s cannot return exact frames of %s (%s); decoded with pyav", backend, path, reason)


# ------------------------------------------------------------------------------------------------
# the public source
# ------------------------------------------------------------------------------------------------


class VideoSource:
    """An open video file. Use ``open_video``; close it (or use ``with``) when done.

    Attributes:
        path: the file.
        index: its ``FrameIndex`` (presentation timestamps of every frame).
        info: ``VideoInfo`` derived from the index.
        backend: the backend that decodes it (``pyav`` when the requested one could not be exact).
        requested_backend: the backend asked for.
    """

    def __init__(self, path: Path, index: FrameIndex, backend: str, threads: int, container=None, fresh=True):
        self.path = path
        self.requested_backend = backend
        self.threads = threads
        self._set_index(index)
        self._reader = None
        if backend != "pyav":
            why = _READERS[backend].unsuitable(index)
            if why is None:
                try:
                    self._reader = _READERS[backend](path, index, threads)
                except _Unsuitable as err:
                    why = str(err)
            if why is not None:
                _log_routed(path, backend, why)
        if self._reader is None:
            self._reader = _PyAVReader(path, index, threads, container, fresh)
        elif container is not None:
            container.close()

    def _set_index(self, index: FrameIndex) -> None:
        self.index = index
        self.info = VideoInfo.from_index(index)

    @property
    def backend(self) -> str:
        return self._reader.name

    @property
    def frame_times(self) -> np.ndarray:
        """float64 ``(num_frames,)``: the presentation time of every frame, in seconds."""
        return self.index.times

    def frames_between(self, start_sec: float | None, end_sec: float | None) -> np.ndarray:
        """int64 indices of the frames whose time lies in ``[start_sec, end_sec)`` seconds."""
        first, stop = self.index.frames_between(start_sec, end_sec)
        return np.arange(first, stop, dtype=np.int64)

    def decode(self, frame_indices: Sequence[int]) -> DecodedClip:
        """Decode the frames at ``frame_indices`` (any order, repeats allowed) -> ``DecodedClip``.

        Indices must lie in ``[0, info.num_frames)``. Only the needed stretch of the stream is
        decoded (from the keyframe before each requested frame, RGB conversion of requested
        frames only). Raises ``VideoDecodeError``.
        """
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            raise ValueError("frame_indices is empty")
        unique, inverse = np.unique(indices, return_inverse=True)
        self._check_range(unique)
        try:
            frames = self._read(unique)
        except VideoDecodeError:
            raise
        except Exception as err:  # every backend has its own error zoo; callers need one type
            raise VideoDecodeError(self.path, f"decoding failed: {readable_error(err)}") from err
        # numpy, not torch, for the bookkeeping: a torch op here wakes its OpenMP threads, which then
        # spin for a while on the cores the decoder needs (measured 10-20% slower clips on 2 cores)
        inverse = inverse.reshape(-1)
        if unique.size != indices.size or not np.array_equal(unique, indices):
            frames = frames[inverse]
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        times = self.index.times[unique][inverse]
        return DecodedClip(
            torch.from_numpy(frames), torch.from_numpy(times), torch.from_numpy(indices.copy())
        )

    def _check_range(self, unique: np.ndarray) -> None:
        if unique[0] < 0 or unique[-1] >= self.info.num_frames:
            raise ValueError(
                f"frame_indices must lie in [0, {self.info.num_frames}) for {self.path}, "
                f"got [{unique[0]}, {unique[-1]}]"
            )

    def _read(self, unique: np.ndarray) -> np.ndarray:
        try:
            return self._reader.read(unique)
        except _Unsuitable as why:
            _log_routed(self.path, self._reader.name, str(why))
            self._reader.close()
            self._reader = _PyAVReader(self.path, self.index, self.threads)
            return self._reader.read(unique)
        except _IndexMismatch as why:
            return self._reindex_and_read(unique, str(why))

    def _reindex_and_read(self, unique: np.ndarray, why: str) -> np.ndarray:
        """The packets promised a frame the decoder never produced: index by decoding, once."""
        if self.index.from_decoding:
            raise VideoDecodeError(self.path, f"decoding failed: {why}")
        logger.warning("%s: %s; indexing its frames by decoding them", self.path, why)
        self._reader.close()
        self._set_index(index_by_decoding(self.path, self.threads))
        self._reader = _PyAVReader(self.path, self.index, self.threads)
        if unique[-1] >= self.info.num_frames:
            decodable = self.info.num_frames
            raise VideoDecodeError(
                self.path, f"frame {unique[-1]} cannot be decoded: only {decodable} frames decode ({why})"
            )
        return self._reader.read(unique)

    def count_decodable_frames(self) -> int:
        """Decode the whole stream once and return how many frames came out (integrity checks).

        Raises ``VideoDecodeError`` on a decoding error.
        """
        try:
            return self._reader.count_frames()
        except VideoDecodeError:
            raise
        except Exception as err:
            raise VideoDecodeError(self.path, f"decoding failed: {readable_error(err)}") from err

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoSource({str(self.path)!r}, backend={self.backend}, {self.index.describe()})"


def open_video(
    path: str | Path, backend: str = DEFAULT_BACKEND, threads: int = 1, allow_truncated: bool = False
) -> VideoSource:
    """Open ``path`` with ``backend``; ``threads`` decoder threads (0 = one per core).

    Raises ``VideoDecodeError`` if the file is missing, empty, not a readable video, or (unless
    ``allow_truncated``) holds clearly fewer frames than its header lists. With
    ``allow_truncated=True`` a cut file opens with the frames it still holds.
    """
    backend = check_backend(backend)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an integer >= 0, got {threads!r}")
    path = Path(path)
    container = fresh = None
    if backend == "pyav":
        # one container for the index (on a cache miss) and the decoding: bigger files spend as
        # long opening (parsing the index of an MP4) as decoding a clip
        check_video_file(path)
        container = open_container(path)
        try:
            index = cached_frame_index(path)
            fresh = index is not None  # else the container reads the index and ends at the file's end
            if index is None:
                index = frame_index(path, container)
        except BaseException:
            container.close()
            raise
    else:
        index = frame_index(path)
    if not allow_truncated and index.truncated is not None:
        if container is not None:
            container.close()
        raise VideoDecodeError(path, index.truncated)
    return VideoSource(path, index, backend, threads, container, fresh is not False)


def decode_clip(
    path: str | Path,
    frame_indices: Sequence[int] | None = None,
    *,
    start_sec: float | None = None,
    end_sec: float | None = None,
    backend: str = DEFAULT_BACKEND,
    threads: int = 1,
    layout: str = "THWC",
) -> DecodedClip:
    """Decode some frames of one video.

    Give either ``frame_indices`` or a time range ``[start_sec, end_sec)`` (every frame whose
    presentation time falls inside; ``None`` means from the first / to the last frame); nothing
    selects the whole video. ``layout`` ``"THWC"`` gives frames uint8 ``(T, H, W, 3)``,
    ``"CTHW"`` gives ``(3, T, H, W)``.
    """
    if layout not in ("THWC", "CTHW"):
        raise ValueError(f"layout must be 'THWC' or 'CTHW', got {layout!r}")
    if frame_indices is not None and (start_sec is not None or end_sec is not None):
        raise ValueError("pass frame_indices or start_sec/end_sec, not both")
    with open_video(path, backend=backend, threads=threads) as video:
        if frame_indices is None:
            frame_indices = video.frames_between(start_sec, end_sec)
            if len(frame_indices) == 0:
                info = video.info
                raise ValueError(
                    f"no frame of {path} ({info.num_frames} frames from {info.start_time:.3f} s to "
                    f"{info.start_time + info.duration:.3f} s) lies in [{start_sec}, {end_sec}) s"
                )
        clip = video.decode(frame_indices)
    if layout == "CTHW":
        clip = clip._replace(frames=clip.frames.permute(3, 0, 1, 2))
    return clip


# ------------------------------------------------------------------------------------------------
# float clips for viewing and measuring (softpool-visualize, the retention benchmark)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoClip:
    """Decoded, optionally shrunk RGB frames of one video, as floats.

    Attributes:
        frames: ``(3, T, H, W)`` float32 RGB in [0, 1], channels first so that
            ``frames.unsqueeze(0)`` is the ``(N, C, T, H, W)`` layout of the pooling operators.
        fps: frames per second (exact for constant-rate files, e.g. ``Fraction(30000, 1001)``;
            the average rate of variable-rate ones).
        path: the file it came from.
        start_time: presentation time of the first decoded frame, in seconds.
        times: float64 ``(T,)`` presentation time of every frame.
    """

    frames: torch.Tensor
    fps: Fraction
    path: Path
    start_time: float = 0.0
    times: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.frames.shape[1]

    @property
    def height(self) -> int:
        return self.frames.shape[2]

    @property
    def width(self) -> int:
        return self.frames.shape[3]

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: ``num_frames / fps``."""
        return self.num_frames / float(self.fps)


def scaled_size(width: int, height: int, max_side: int | None, short_side: int | None) -> tuple[int, int]:
    """(width, height) shrunk so the longer side is at most ``max_side`` and the shorter at most
    ``short_side`` (never enlarged; ``None`` or 0 sets no limit)."""
    scale = 1.0
    if max_side:
        scale = min(scale, max_side / max(width, height))
    if short_side:
        scale = min(scale, short_side / min(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float32 ``(3, T, height, width)`` in [0, 1] for ``size =
    (width, height)``; shrinking averages the covered pixels (area filter, no aliasing)."""
    video = frames.permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, H, W)
    width, height = size
    if (height, width) != tuple(video.shape[-2:]):
        mode = "area" if height <= video.shape[-2] and width <= video.shape[-1] else "bilinear"
        extra = {} if mode == "area" else {"align_corners": False}
        video = torch.nn.functional.interpolate(video, size=(height, width), mode=mode, **extra).clamp_(0, 1)
    return video.permute(1, 0, 2, 3).contiguous()


def _check_clip_arguments(start, end, max_side, short_side, max_frames) -> None:
    if start is not None and not (isinstance(start, int | float) and math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a number of seconds >= 0, got {start!r}")
    if end is not None and not (isinstance(end, int | float) and end > (start or 0.0)):
        raise ValueError(f"end must be greater than start ({start or 0.0} s), got {end!r}")
    for name, value in (("max_side", max_side), ("short_side", short_side)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative int (0 or None: no limit), got {value!r}")
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1
    ):
        raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")


def decode_video(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    max_side: int | None = None,
    max_frames: int | None = None,
    short_side: int | None = None,
    backend: str = DEFAULT_BACKEND,
    progress: bool = False,
) -> VideoClip:
    """Decode the frames of ``path`` whose presentation time lies in ``[start, end)`` seconds into
    a float ``VideoClip``, shrunk with an area filter to ``max_side``/``short_side``.

    Args:
        path: a video file FFmpeg can read.
        start, end: time range in seconds on the video's presentation timeline; ``None`` means
            the first / the last frame.
        max_side: longest side of the frames in pixels; ``None`` or 0 keeps the size.
        max_frames: at most this many frames (the first ones of the range).
        short_side: shortest side in pixels (models' "short-side scale"); with ``max_side`` too,
            the stronger shrink wins.
        backend: decoder backend (see the module docstring).
        progress: show a progress bar over the decoded frames.

    Raises:
        VideoDecodeError: the file is missing or not a readable video, or the range holds no frame.
        ValueError: an argument is out of range.
    """
    _check_clip_arguments(start, end, max_side, short_side, max_frames)
    with open_video(path, backend=backend) as video:
        indices = video.frames_between(start, end)
        if max_frames is not None:
            indices = indices[:max_frames]
        if indices.size == 0:
            info = video.info
            raise VideoDecodeError(
                path,
                f"no frame lies in [{start or 0.0}, {'end' if end is None else end}) s (frames run from "
                f"{info.start_time:.3f} s to {info.start_time + info.duration:.3f} s)",
            )
        info = video.info
        chunks = []
        size = None
        from tqdm import tqdm

        bar = tqdm(total=int(indices.size), desc="decoding", unit="frame", leave=False, disable=not progress)
        for first in range(0, indices.size, 32):  # bounded memory: 32 full-size frames at a time
            decoded = video.decode(indices[first : first + 32]).frames
            if size is None:
                size = scaled_size(decoded.shape[2], decoded.shape[1], max_side, short_side)
            chunks.append(resize_frames(decoded, size))
            bar.update(decoded.shape[0])
        bar.close()
        times = torch.from_numpy(video.frame_times[indices])
    rate = info.nominal_fps if info.nominal_fps and not info.variable_frame_rate else info.fps
    fps = Fraction(rate).limit_denominator(1001)
    return VideoClip(torch.cat(chunks, dim=1), fps, Path(path), float(times[0]), times)
