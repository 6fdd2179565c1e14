from pathlib import Path

import av
import numpy as np
import pytest

from conftest import DATA, S1, write_video
from dualface.errors import DamagedMediaError, DualfaceError
from dualface.prefetch import prefetch
from dualface.video import expand_inputs, probe_video, read_frames, read_image, read_video


def test_grid_clip_decodes_every_frame_as_contiguous_rgb():
    frames = list(read_video(S1))
    assert [i for i, _ in frames] == list(range(75))
    frame = frames[0][1]
    assert frame.shape == (288, 360, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
    corner = frame[:40, :40].reshape(-1, 3).mean(0)
    assert corner[2] > corner[0]  # GRID's backdrop is blue: the channels are RGB, not BGR


def test_probe_reads_size_rate_and_audio():
    info = probe_video(S1)
    assert (info.width, info.height, info.fps, info.has_audio) == (360, 288, 25.0, True)
    assert abs(info.frame_count - 75) <= 1


def test_expand_inputs(tmp_path, stills):
    (tmp_path / "notes.txt").write_text("no media")
    empty = tmp_path / "empty"
    empty.mkdir()
    sources, problems = expand_inputs([DATA / "grid" / "s1", stills, stills / "s1_0.png", tmp_path / "missing", empty])
    kinds = [(s.kind, s.name) for s in sources]
    assert kinds[:5] == [("video", p.stem) for p in sorted((DATA / "grid" / "s1").glob("*.mpg"))]
    assert ("images", "stills") in kinds and ("images", "s1_0") in kinds
    assert [p for p, _ in problems] == [tmp_path / "missing", empty]


def test_folder_of_stills_reads_in_order(stills):
    (source,) = expand_inputs([stills])[0]
    frames = list(read_frames(source))
    assert [i for i, _ in frames] == [0, 1, 2, 3] and frames[1][1].shape == (288, 360, 3)


def test_unreadable_still_is_skipped_not_fatal(stills):
    (stills / "s1_9.jpg").write_bytes(b"not a jpeg")
    (source,) = expand_inputs([stills])[0]
    assert len(list(read_frames(source))) == 4


def test_not_media_is_a_clear_error(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello " * 100)
    with pytest.raises(DualfaceError, match=r"fake\.mp4: not a readable video"):
        list(read_video(fake))
    with pytest.raises(DualfaceError, match="not a readable image"):
        read_image(tmp_path / "fake.mp4")


def test_truncated_mp4_is_a_clear_error(tmp_path, s1_frames):
    whole = write_video(tmp_path / "whole.mp4", s1_frames[:30]).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DualfaceError, match=r"cut\.mp4"):
        list(read_video(tmp_path / "cut.mp4"))


def mp4_for_streaming(clip: Path, path: Path, trim: int = 0) -> Path:
    """`clip`'s packets remuxed into an MP4 whose index comes first, as a web download's does; `trim`
    frames moved before the start, which the MP4 then hides with an edit list (a trim without
    re-encoding, as `ffmpeg -ss ... -c copy` and phone editors make)."""
    with av.open(str(clip)) as source, av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = source.streams.video[0]
        copy = out.add_stream_from_template(stream)
        shift = trim * round(1 / (stream.average_rate * stream.time_base))
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            packet.pts, packet.dts, packet.stream = packet.pts - shift, packet.dts - shift, copy
            out.mux(packet)
    return path


def test_an_mp4_cut_short_says_so_and_a_trimmed_one_does_not(tmp_path, s1_frames):
    """An interrupted download keeps the header that counts every frame, but not the frames: it decodes
    without an error, so the shortfall is what says it is incomplete."""
    whole = mp4_for_streaming(write_video(tmp_path / "clip.mp4", s1_frames[:40]), tmp_path / "whole.mp4")
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    got = []
    truncated = r"cut\.mp4: video is truncated: \d+ frames read, [\d.]+ s of the 1\.60 s"
    with pytest.raises(DamagedMediaError, match=truncated):
        for index, _ in read_video(tmp_path / "cut.mp4"):
            got.append(index)
    assert 0 < len(got) < 40
    assert len(list(read_video(whole))) == 40
    # Trimmed: the header counts 40 packets, all there; the 5 before the start are decoded, not shown.
    trimmed = mp4_for_streaming(tmp_path / "clip.mp4", tmp_path / "trimmed.mp4", trim=5)
    assert len(list(read_video(trimmed))) == 35
    # Trimmed past a keyframe: FFmpeg drops the packets before the one the new start needs, fewer than counted
    write_video(tmp_path / "gop.mp4", s1_frames[:40], keyframe_every=10)
    trimmed = mp4_for_streaming(tmp_path / "gop.mp4", tmp_path / "trimmed25.mp4", trim=25)
    assert len(list(read_video(trimmed))) == 15
    # Whole, with its last frame held 3 s (a screen recording, a slideshow): the header's duration is right
    held = write_video(tmp_path / "held.mp4", s1_frames[:10], last_lasts_s=3)
    with av.open(str(held)) as container:
        assert float(container.streams.video[0].duration * container.streams.video[0].time_base) > 3
    assert len(list(read_video(held))) == 10


def test_frame_times_are_recorded_for_constant_and_variable_rates(tmp_path, s1_frames):
    times = []
    assert len(list(read_video(S1, times))) == 75
    assert np.allclose(times, np.arange(75) / 25)
    # 80 ms apart, then 40: a phone that dropped frames in the dark, or a variable-rate recording
    stamps = [80 * i for i in range(6)] + [400 + 40 * i for i in range(1, 7)]
    clip = write_video(tmp_path / "vfr.mp4", s1_frames[: len(stamps)], times_ms=stamps)
    times = []
    assert len(list(read_frames(expand_inputs([clip])[0][0], times=times))) == 12
    assert np.allclose(times, np.array(stamps) / 1000)


def test_damaged_video_yields_the_good_frames_then_says_so(tmp_path, s1_frames):
    data = bytearray(write_video(tmp_path / "whole.mp4", s1_frames[:40]).read_bytes())
    rng = np.random.default_rng(1)
    middle = len(data) // 2
    data[middle : middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    got = []
    with pytest.raises(DamagedMediaError, match=r"damaged\.mp4"):
        for index, _ in read_video(tmp_path / "damaged.mp4"):
            got.append(index)
    assert 10 < len(got) < 40


def test_prefetch_keeps_order_and_reraises():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise DualfaceError("boom")

    with pytest.raises(DualfaceError, match="boom"):
        list(prefetch(failing()))


def test_prefetch_stops_its_thread_when_abandoned():
    stream = prefetch(read_video(S1), depth=2)
    next(stream)
    stream.close()  # must not hang waiting on a full queue


def test_metadata_in_another_encoding_is_read_past(tmp_path, s1_frames):
    """A localised encoder's Latin-1 handler name: PyAV's strict UTF-8 raised a traceback on opening."""
    data = bytearray(write_video(tmp_path / "clip.mp4", s1_frames[:3]).read_bytes())
    at = data.find(b"VideoHandler")
    assert at > 0
    data[at + 5] = 0xE9  # "Video\xe9andler"
    (tmp_path / "latin1.mp4").write_bytes(bytes(data))
    with pytest.raises(UnicodeDecodeError):
        av.open(str(tmp_path / "latin1.mp4")).close()
    assert probe_video(tmp_path / "latin1.mp4").frame_count == 3
    assert len(list(read_video(tmp_path / "latin1.mp4"))) == 3
