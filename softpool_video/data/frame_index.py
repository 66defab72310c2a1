"""Where every frame of a video is: the presentation timestamps of all its frames.

The project's one definition of a frame: **frame k is the k-th frame in presentation order, and
its time is its real presentation timestamp** (``pts * time_base``, the number ``ffprobe`` prints
as ``pts_time``). ``FrameIndex`` holds those timestamps for one video stream, sorted, read from
the stream's packets by demuxing the file once without decoding (a few milliseconds for a 10 s
clip). Every backend of ``decoders.py`` is held to it:

- ``num_frames`` is the number of frames the file really holds (its packets), not duration x fps,
  so audio longer than the video, variable frame rates and rounded header durations do not matter;
- frame times are the packets' own timestamps, so variable-frame-rate (VFR) videos keep their
  real timeline;
- a file holding fewer packets than its header lists (a cut download) is reported as truncated.

Some streams cannot be indexed by timestamp: DivX/XviD "packed B-frames" (two pictures in one
AVI chunk, the decoder hands out frames with shuffled timestamps), streams without timestamps,
duplicate timestamps. For those ``timestamps_reliable`` is False and decoders count frames from
the start of the stream instead, which is exact because decoders emit frames in presentation
order. The properties ``reordered`` (B-frames), ``open_gop`` and ``container`` tell a backend
whether its seeking can be trusted on the file (see ``decoders.py``).

``frame_index(path)`` caches indices per process, keyed by the file's path, size and
modification time, so a dataset that opens a video every epoch demuxes it once per worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# A header may count a frame or two more than the file holds (rounded durations, a trailing
# empty chunk); more missing frames than this means the file was cut short.
TRUNCATION_TOLERANCE_FRAMES = 2

# MPEG-4 part 2 picture (VOP) start code: a packet with two of them is a "packed B-frame" chunk
_VOP_START_CODE = b"\x00\x00\x01\xb6"

_cache_size = 2048


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded. ``path`` is the file, ``reason`` what went wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """The frames of a video stream in presentation order (see the module docstring).

    Attributes:
        path: the file.
        pts: int64 ``(N,)`` presentation timestamps in ``time_base`` units, strictly increasing
            when ``timestamps_reliable``.
        time_base: seconds per ``pts`` unit.
        keyframes: int64 ``(K,)`` sorted indices of the frames a decoder can start from.
        timestamps_reliable: decoded frames carry exactly these timestamps, so they can be
            matched to indices after a seek. False: count frames from the start of the stream.
        reordered: decode order differs from presentation order (B-frames).
        open_gop: some frame decoded after a keyframe is shown before it (open GOPs).
        packed_bframes: DivX/XviD packed B-frames (AVI chunks holding two pictures).
        container: FFmpeg's demuxer name (``"avi"``, ``"matroska,webm"``, ``"mov,mp4,..."``).
        codec: the video codec (``"h264"``, ``"mpeg4"``, ``"vp9"``, ...).
        width, height: frame size in pixels.
        nominal_fps: the container's frame rate (``None`` when it states none); may differ from
            ``average_fps`` for variable-frame-rate files.
        header_frames: the frame count the container declares, ``None`` when it declares none.
        packets_read: video packets found in the file (empty and discarded ones included).
        read_error: why reading the packets stopped before the end of the file, if it did.
        from_decoding: built by decoding every frame (a fallback when the packets mislead).
        times: float64 ``(N,)`` ``pts * time_base`` in seconds.
    """

    path: str
    pts: np.ndarray
    time_base: Fraction
    keyframes: np.ndarray
    timestamps_reliable: bool
    reordered: bool
    open_gop: bool
    packed_bframes: bool
    container: str
    codec: str
    width: int
    height: int
    nominal_fps: float | None
    header_frames: int | None
    packets_read: int
    read_error: str | None = None
    from_decoding: bool = False
    times: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "times", self.pts.astype(np.float64) * float(self.time_base))

    # ---- sizes and rates ----------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return int(self.pts.size)

    @property
    def start_time(self) -> float:
        """Seconds: the presentation time of frame 0."""
        return float(self.times[0])

    @property
    def frame_duration(self) -> float:
        """Seconds: the typical (median) distance between consecutive frames."""
        if self.num_frames > 1:
            gap = float(np.median(np.diff(self.times)))
            if gap > 0:
                return gap
        return 1.0 / self.nominal_fps if self.nominal_fps else 1.0

    @property
    def duration(self) -> float:
        """Seconds from the start of frame 0 to the end of the last frame (shown for one
        ``frame_duration``)."""
        return float(self.times[-1] - self.times[0]) + self.frame_duration

    @property
    def average_fps(self) -> float:
        """Frames per second over the whole stream: ``num_frames / duration``."""
        return self.num_frames / self.duration

    @property
    def variable_frame_rate(self) -> bool:
        """True when frame spacing varies by more than timestamp rounding (two ticks) and 1%."""
        if self.num_frames < 3:
            return False
        gaps = np.diff(self.pts)
        spread = int(gaps.max() - gaps.min())
        return spread > max(2, 0.01 * float(np.median(gaps)))

    @property
    def truncated(self) -> str | None:
        """Why the file looks cut short (``None`` when it does not)."""
        if self.read_error is not None:
            return f"reading stopped after {self.packets_read} video packets: {self.read_error}"
        if self.header_frames is not None:
            missing = self.header_frames - self.packets_read
            if missing > TRUNCATION_TOLERANCE_FRAMES:
                return (
                    f"truncated: the file holds {self.packets_read} of the {self.header_frames} "
                    "frames its header lists"
                )
        return None

    # ---- lookups ------------------------------------------------------------------------------

    def keyframe_at_or_before(self, frame: int) -> int:
        """The last keyframe index <= ``frame`` (0 when there is none)."""
        position = int(np.searchsorted(self.keyframes, frame, side="right")) - 1
        return int(self.keyframes[position]) if position >= 0 else 0

    def frame_at_time(self, seconds: np.ndarray | float) -> np.ndarray:
        """int64 index of the frame on screen at each time: the last frame whose time is <= it
        (clipped to the first and last frame). A microsecond of slack absorbs float rounding."""
        positions = (
            np.searchsorted(self.times, np.asarray(seconds, dtype=np.float64) + 1e-6, side="right") - 1
        )
        return np.clip(positions, 0, self.num_frames - 1).astype(np.int64)

    def frames_between(self, start_sec: float | None, end_sec: float | None) -> tuple[int, int]:
        """``(first, stop)``: the frames whose time lies in ``[start_sec, end_sec)`` (``None``:
        from the first / to the last frame). Empty (``first == stop``) when none does."""
        first = 0 if start_sec is None else int(np.searchsorted(self.times, start_sec - 1e-6, side="left"))
        stop = (
            self.num_frames
            if end_sec is None
            else int(np.searchsorted(self.times, end_sec - 1e-6, side="left"))
        )
        return first, max(first, stop)

    def describe(self) -> str:
        rate = "variable" if self.variable_frame_rate else "constant"
        return (
            f"{self.num_frames} frames, {self.average_fps:.3f} fps average ({rate} rate), "
            f"{self.codec} in {self.container}, from {self.start_time:.3f} s"
        )


# ------------------------------------------------------------------------------------------------
# building
# ------------------------------------------------------------------------------------------------


def open_container(path: Path):
    """``av.open(path)``, failures as ``VideoDecodeError``."""
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as err:
        raise VideoDecodeError(path, f"cannot open: {readable_error(err)}") from err


def readable_error(err: BaseException) -> str:
    """What went wrong, for people: FFmpeg's own words without its errno number or the file name
    (``not a video FFmpeg can read (Invalid data found when processing input)``), or
    ``Type: message`` for any other error."""
    strerror = getattr(err, "strerror", None)
    if strerror and hasattr(err, "errno"):  # av.error.FFmpegError and OSError
        if type(err).__name__ == "InvalidDataError":
            return f"not a video FFmpeg can read ({strerror})"
        return str(strerror)
    return f"{type(err).__name__}: {err}"


def check_video_file(path: Path) -> None:
    """``VideoDecodeError`` unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise VideoDecodeError(path, "file does not exist")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")


def _stream_facts(path: Path, container) -> dict:
    if not container.streams.video:
        raise VideoDecodeError(path, "no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return {
        "stream": stream,
        "container": container.format.name,
        "codec": stream.codec_context.name,
        "width": int(stream.codec_context.width or 0),
        "height": int(stream.codec_context.height or 0),
        "nominal_fps": float(rate) if rate else None,
        "header_frames": int(stream.frames) if stream.frames and stream.frames > 0 else None,
    }


def build_frame_index(path: str | Path, container=None) -> FrameIndex:
    """Index ``path`` by demuxing its video packets (no decoding). Raises ``VideoDecodeError`` when
    the file is missing, empty, not a video, or holds no video packet.

    ``container``: an open PyAV container of ``path`` to read with (left open, at the end of the
    file; a decoder that goes on using it saves opening the file twice). Default: open one."""
    path = Path(path)
    if container is None:
        check_video_file(path)
        container = open_container(path)
    else:
        container = contextlib.nullcontext(container)
    with container as container:
        facts = _stream_facts(path, container)
        stream = facts.pop("stream")
        time_base = stream.time_base or Fraction(1, 90000)
        look_for_packed = facts["codec"] == "mpeg4"
        decode_order_pts: list[int | None] = []
        keyframe_flags: list[bool] = []
        packets_read = 0
        packed = False
        read_error = None
        try:
            for packet in container.demux(stream):
                if packet.dts is None and packet.pts is None:
                    continue  # the demuxer's end-of-stream flush packet
                packets_read += 1
                if packet.size == 0 or packet.is_discard:
                    continue  # a dropped-frame placeholder, or decoded only as a reference
                decode_order_pts.append(packet.pts)
                keyframe_flags.append(bool(packet.is_keyframe))
                if look_for_packed and not packed:
                    data = bytes(packet)
                    packed = data.count(_VOP_START_CODE) > 1
        except Exception as err:  # a damaged container: keep what was read, report the rest
            read_error = readable_error(err)
    if not decode_order_pts:
        reason = "the video stream holds no frame"
        raise VideoDecodeError(path, reason if read_error is None else f"{reason} ({read_error})")
    return _index_from_packets(
        path, decode_order_pts, keyframe_flags, packets_read, packed, read_error, time_base, facts
    )


def _index_from_packets(
    path: Path,
    decode_order_pts: list[int | None],
    keyframe_flags: list[bool],
    packets_read: int,
    packed: bool,
    read_error: str | None,
    time_base: Fraction,
    facts: dict,
) -> FrameIndex:
    count = len(decode_order_pts)
    have_pts = all(p is not None for p in decode_order_pts)
    if have_pts:
        in_decode_order = np.asarray(decode_order_pts, dtype=np.int64)
        order = np.argsort(in_decode_order, kind="stable")
        pts = in_decode_order[order]
        unique = bool(np.all(np.diff(pts) > 0))
        reordered = bool(np.any(np.diff(in_decode_order) < 0))
        open_gop = _has_open_gop(in_decode_order, keyframe_flags)
        # presentation position of each keyframe packet
        is_key = np.asarray(keyframe_flags, dtype=bool)[order]
        keyframes = np.flatnonzero(is_key).astype(np.int64)
    else:
        # no timestamps: number frames in decode order at the nominal rate (decoders then count)
        rate = Fraction(facts["nominal_fps"] or 25).limit_denominator(1001)
        time_base = 1 / rate
        pts = np.arange(count, dtype=np.int64)
        unique, reordered, open_gop = False, False, False
        keyframes = np.zeros(1, dtype=np.int64)
    if keyframes.size == 0 or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    return FrameIndex(
        path=str(path),
        pts=pts,
        time_base=Fraction(time_base),
        keyframes=keyframes,
        timestamps_reliable=have_pts and unique and not packed,
        reordered=reordered,
        open_gop=open_gop,
        packed_bframes=packed,
        packets_read=packets_read,
        read_error=read_error,
        **facts,
    )


def _has_open_gop(in_decode_order: np.ndarray, keyframe_flags: list[bool]) -> bool:
    """True when a frame that follows a keyframe in decode order is shown before it."""
    keyframe_pts = None
    for pts, is_key in zip(in_decode_order.tolist(), keyframe_flags):
        if is_key:
            keyframe_pts = pts
        elif keyframe_pts is not None and pts < keyframe_pts:
            return True
    return False


def index_by_decoding(path: str | Path, threads: int = 1) -> FrameIndex:
    """Index ``path`` by decoding every frame (no colour conversion): slower than
    ``build_frame_index`` but true to what a decoder outputs, for files whose packets mislead
    (e.g. pictures that are never shown). Timestamps come from the decoded frames; frames without
    one make the index count-based (``timestamps_reliable=False``)."""
    path = Path(path)
    packets = frame_index(path)
    container = open_container(path)
    with container:
        facts = _stream_facts(path, container)
        stream = facts.pop("stream")
        if threads != 1:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
        decoded_pts: list[int | None] = []
        keys: list[bool] = []
        try:
            for frame in container.decode(stream):
                decoded_pts.append(frame.pts)
                keys.append(bool(frame.key_frame))
        except Exception as err:
            raise VideoDecodeError(path, f"decoding failed after {len(decoded_pts)} frames: {err}") from err
    if not decoded_pts:
        raise VideoDecodeError(path, "no frame could be decoded")
    ordered = all(p is not None for p in decoded_pts) and all(
        b > a for a, b in zip(decoded_pts, decoded_pts[1:])
    )
    if ordered:
        pts = np.asarray(decoded_pts, dtype=np.int64)
        time_base = stream.time_base or packets.time_base
    else:  # keep the packets' timeline for the frames that came out
        pts = packets.pts[: len(decoded_pts)].copy()
        time_base = packets.time_base
    keyframes = np.flatnonzero(np.asarray(keys, dtype=bool)).astype(np.int64)
    if keyframes.size == 0 or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    index = FrameIndex(
        path=str(path),
        pts=pts,
        time_base=Fraction(time_base),
        keyframes=keyframes,
        timestamps_reliable=ordered and packets.timestamps_reliable,
        reordered=packets.reordered,
        open_gop=packets.open_gop,
        packed_bframes=packets.packed_bframes,
        packets_read=packets.packets_read,
        read_error=packets.read_error,
        from_decoding=True,
        **facts,
    )
    _remember(path, index)
    return index


# ------------------------------------------------------------------------------------------------
# per-process cache
# ------------------------------------------------------------------------------------------------

_cache: OrderedDict[tuple, FrameIndex] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_key(path: Path) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def _remember(path: Path, index: FrameIndex) -> None:
    key = _cache_key(path)
    if key is None:
        return
    with _cache_lock:
        _cache[key] = index
        _cache.move_to_end(key)
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)


def cached_frame_index(path: str | Path) -> FrameIndex | None:
    """The cached index of ``path`` if it is still current, else ``None``."""
    key = _cache_key(Path(path))
    if key is None:
        return None
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
        return cached


def frame_index(path: str | Path, container=None) -> FrameIndex:
    """``build_frame_index(path, container)``, cached per process (a changed file is indexed
    again; ``container`` is only read on a cache miss)."""
    path = Path(path)
    cached = cached_frame_index(path)
    if cached is not None:
        return cached
    index = build_frame_index(path, container)
    _remember(path, index)
    return index


def clear_frame_index_cache() -> None:
    """Forget every cached index (tests, or files rewritten within one mtime tick)."""
    with _cache_lock:
        _cache.clear()


def set_frame_index_cache_size(size: int) -> int:
    """Keep at most ``size`` indices per process (0 disables the cache); returns the old size.
    DataLoader workers started after the call (fork) inherit it."""
    global _cache_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an integer >= 0, got {size!r}")
    with _cache_lock:
        old, _cache_size = _cache_size, size
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)
    return old
