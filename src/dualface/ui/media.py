"""A browser-playable copy of an original video, to watch beside its conversion.

Browsers play H.264 in MP4, but not most of what FFmpeg reads (GRID's MPEG-1, AVI, WMV...), so the UI shows
an H.264 copy of the source next to the swap. The copy is the picture only (the swap beside it has the
sound), and it is not labelled synthetic, because it is not. A job step: `python -m dualface.ui.media SOURCE
COPY`.
"""

import os
import sys
import tempfile
from pathlib import Path

import av

from dualface.errors import DamagedMediaError, DualfaceError
from dualface.files import FILE_MODE
from dualface.video import probe_video, read_video
from dualface.writer import frame_pts, frame_rate, h264_stream


def browser_copy(source: Path, target: Path, crf: int = 20) -> int:
    """Re-encode `source` as H.264 (yuv420p, even size) into `target` atomically, each frame at its time in
    the source, as the swap keeps it (`convert`): a variable-rate video (a phone's) plays in step with its
    swap, where frames spaced at the average rate would drift. Returns the number of frames written."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = frame_rate(stream)
        clock = stream.time_base or 1 / rate  # the source's own, fine enough for any spacing of its frames
    step = max(1, round(1 / (rate * clock)))  # one frame at the average rate
    upright = probe_video(source)  # the size read_video hands frames over at: a phone's portrait stood up
    width, height = upright.width // 2 * 2, upright.height // 2 * 2  # yuv420p needs even sides
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".mp4")
    os.close(fd)
    count, last = 0, None
    times: list[float | None] = []
    try:
        with av.open(tmp, "w", options={"movflags": "faststart"}) as out:  # playable before fully loaded
            video = h264_stream(out, rate, width, height, crf, "veryfast")
            # Timed on `clock`, not on `video.time_base`, which the muxer may replace (see writer.video_writer).
            video.time_base = video.codec_context.time_base = clock
            try:
                for _, frame in read_video(source, times):
                    picture = av.VideoFrame.from_ndarray(frame[:height, :width], format="rgb24")
                    last = frame_pts(times[-1], count, last, rate, clock)
                    picture.pts, picture.time_base, picture.duration = last, clock, step
                    out.mux(video.encode(picture))
                    count += 1
            except DamagedMediaError:
                pass  # every decodable frame was delivered; a preview copy needs no more
            out.mux(video.encode(None))
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would hide the copy from everyone but its writer
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return count


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m dualface.ui.media SOURCE COPY.mp4", file=sys.stderr)
        return 2
    try:
        frames = browser_copy(Path(argv[0]), Path(argv[1]))
    except (DualfaceError, av.error.FFmpegError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the job's Cancel: the job log's last line is what the UI shows
        print(f"interrupted: no copy written to {argv[1]}", file=sys.stderr)
        return 130
    print(f"browser copy of {argv[0]}: {frames} frames in {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
