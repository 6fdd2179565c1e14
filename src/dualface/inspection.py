"""`dualface inspect`: do two face sets cover the same poses and expressions?

A decoder can only draw what it was shown. Swapping A's footage into B asks B's decoder for every head
pose and expression A makes; where B's faces never turn that far, open the mouth that wide or close the
eyes, the swap comes out blurry or stuck in B's nearest expression. This module measures four things per
face from its landmarks (yaw, pitch, mouth opening, eye opening), bins them, and names the bins where A has
faces and B has next to none, with a histogram of both sets.

Pose is measured on the crop-space landmarks (the record's landmarks through its matrix), seen by a
virtual camera whose frame is `VIEW_FACE_WIDTHS` face widths across, not on the source frame:
- it works for every face PNG, including faces from photos (whose records hold no frame size) and faces
  copied into a folder without their alignments file;
- it measures the head against the line of sight, which is what the crop looks like and what the model
  learns from: a face at the edge of a wide shot looking straight ahead is seen, and drawn, from the side;
- the alignment has already taken out the roll, so only yaw and pitch are binned.
The virtual frame matters because the focal length sets how strongly perspective bends a face. With the
crop itself as the frame the camera would stand under two face widths away, and on the bundled GRID clips pitch
reads 4-6 degrees lower than the source frame gives against the line of sight. A frame four face widths
across (a head-and-shoulders shot; GRID's frames are 3.5) agrees with it within 1.5 degrees of yaw and of
pitch, clip by clip.
"""

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from dualface.alignments import face_landmarks, read_face_record
from dualface.data import face_files
from dualface.errors import DualfaceError
from dualface.files import ensure_writable_dir, write_output
from dualface.landmarks import mouth_opening
from dualface.pose import eye_opening, head_pose
from dualface.provenance import png_info

log = logging.getLogger(__name__)

VIEW_FACE_WIDTHS = 4.0  # width of the virtual camera's frame, in face widths (jaw to jaw)
MEASURES = ("yaw", "pitch", "mouth", "eyes")
ANGLE_BIN = 10.0  # degrees
RATIO_BINS = 8  # mouth and eye opening: bins over the two sets' joint range
MIN_SHARE = 0.02  # a bin counts for A when it holds this share of A's faces...
MIN_COUNT = 3  # ...and at least this many


@dataclass
class FaceStats:
    """Per-face measures of one face set; arrays hold one value per face, in `files` order."""

    name: str
    yaw: np.ndarray  # degrees, > 0 turned to the person's left (see pose.head_pose)
    pitch: np.ndarray  # degrees, > 0 looking up
    mouth: np.ndarray  # inner-lip gap over mouth width (landmarks.mouth_opening)
    eyes: np.ndarray  # eye aspect ratio (pose.eye_opening)
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.yaw)


@dataclass
class Gap:
    """A bin of one measure where A has faces and B hardly any."""

    measure: str  # one of MEASURES
    low: float
    high: float
    count_a: int
    count_b: int
    advice: str


def face_measures(record: dict) -> tuple[float, float, float, float]:
    """(yaw, pitch, mouth, eyes) of one face from its PNG record."""
    landmarks = np.asarray(record["landmarks"], np.float32)  # in the frame: mouth and eyes are ratios
    crop = face_landmarks(record)
    size = float(record["size"])
    view = VIEW_FACE_WIDTHS * float(record.get("coverage", 0.6)) * size
    # Centre the crop in the virtual frame: the principal point falls on the crop's centre.
    yaw, pitch, _ = head_pose(crop + (view - size) / 2, (round(view), round(view)))
    return float(yaw), float(pitch), mouth_opening(landmarks), eye_opening(landmarks)


def load_stats(folder: Path, name: str | None = None) -> FaceStats:
    """Measure every face PNG that `dualface extract` wrote into `folder` (only their records are read)."""
    folder = Path(folder)
    files = face_files(folder)
    values = []
    for path in files:
        try:
            values.append(face_measures(read_face_record(path)))
        except (KeyError, TypeError, ValueError) as error:
            raise DualfaceError(f"{path}: face record is incomplete or damaged ({error!r})") from None
    columns = np.array(values, np.float64).T  # (4, N)
    return FaceStats(name or folder.name, *columns, files=[p.name for p in files])


def bin_edges(measure: str, a: FaceStats, b: FaceStats) -> np.ndarray:
    """Bin edges shared by both sets: 10 degree bins on whole tens for angles (-10..10 one bin), RATIO_BINS
    over the joint range for the openings."""
    values = np.concatenate([getattr(a, measure), getattr(b, measure)])
    low, high = float(values.min()), float(values.max())
    if measure in ("yaw", "pitch"):
        # One bin for "facing the camera" (-10..10, as `describe` words it): split at 0, a set at yaw 1..8
        # and another at -5..-1 each read as having no frontal faces in the other's half.
        low = min(np.floor(low / ANGLE_BIN) * ANGLE_BIN, -ANGLE_BIN)
        high = max(np.ceil(high / ANGLE_BIN) * ANGLE_BIN, ANGLE_BIN)
        edges = np.arange(low, high + ANGLE_BIN / 2, ANGLE_BIN)
        return edges[np.abs(edges) > ANGLE_BIN / 2]
    if high - low < 1e-6:  # every face the same: one bin around the value
        low, high = low - 0.01, high + 0.01
    return np.linspace(low, high, RATIO_BINS + 1)


# Upper limits of each opening's words, from landmarks.mouth_opening and pose.eye_opening.
MOUTH_WORDS = ((0.05, "closed"), (0.15, "a little open"), (0.3, "open"), (np.inf, "open wide"))
EYE_WORDS = ((0.15, "closed"), (0.22, "half closed"), (0.35, "open"), (np.inf, "wide open"))


def describe(measure: str, low: float, high: float) -> str:
    """What faces in a bin look like, in words: how to ask for more of them."""
    centre = (low + high) / 2
    if measure == "yaw":
        return "facing the camera" if abs(centre) < 10 else f"turned to their {'left' if centre > 0 else 'right'}"
    if measure == "pitch":
        return "looking straight ahead" if abs(centre) < 10 else f"looking {'up' if centre > 0 else 'down'}"
    part, table = ("mouth", MOUTH_WORDS) if measure == "mouth" else ("eyes", EYE_WORDS)
    return f"with the {part} {next(words for limit, words in table if centre < limit)}"


def advice(measure: str, low: float, high: float, a: FaceStats, b: FaceStats, count_a: int, count_b: int) -> str:
    """One line for the user: what B lacks, what to add, and what happens otherwise."""
    what = describe(measure, low, high)
    if measure in ("yaw", "pitch"):
        span = f"{measure} {low:.0f}..{high:.0f}°"
        cost = "or swaps of these frames will be blurry"
    else:
        part = "mouth" if measure == "mouth" else "eye"
        span = f"{part} opening {low:.2f}..{high:.2f}"
        cost = f"or swapped {part}s will not follow {a.name}'s in these frames"
    faces = "face" if count_b == 1 else "faces"
    return (
        f"{b.name} has {count_b} {faces} {what} ({span}) where {a.name} has {count_a}: "
        f"add footage of {b.name} {what}, {cost}"
    )


def find_gaps(a: FaceStats, b: FaceStats, min_faces: int = 5) -> list[Gap]:
    """The bins where A has a meaningful number of faces (>= MIN_SHARE of A and >= MIN_COUNT) and B fewer
    than `min_faces` and fewer than A (so a set never lacks what it has itself): the poses and expressions
    a swap of A's footage into B lacks.

    One-way: swapping B into A needs `find_gaps(b, a)`.
    """
    gaps = []
    needed = max(MIN_COUNT, MIN_SHARE * len(a))
    for measure in MEASURES:
        edges = bin_edges(measure, a, b)
        counts_a = np.histogram(getattr(a, measure), edges)[0]
        counts_b = np.histogram(getattr(b, measure), edges)[0]
        for low, high, count_a, count_b in zip(edges[:-1], edges[1:], counts_a, counts_b, strict=True):
            if count_a >= needed and count_b < min_faces and count_b < count_a:
                text = advice(measure, low, high, a, b, int(count_a), int(count_b))
                gaps.append(Gap(measure, float(low), float(high), int(count_a), int(count_b), text))
    return gaps


TITLES = {
    "yaw": "yaw, degrees (+ turned to their left)",
    "pitch": "pitch, degrees (+ looking up)",
    "mouth": "mouth opening (0 closed)",
    "eyes": "eye opening (under 0.15 closed)",
}


def plot_coverage(a: FaceStats, b: FaceStats, gaps: list[Gap], path: Path) -> None:
    """2x2 histograms of both sets (share of each set's faces per bin, so sets of any size compare), gap
    bins shaded; written atomically as a PNG labelled with dualface's provenance."""
    # A Figure on its own Agg canvas: no pyplot, so no global backend or figure registry is touched.
    figure = Figure(figsize=(10, 7.5), dpi=100)
    canvas = FigureCanvasAgg(figure)
    for axes, measure in zip(figure.subplots(2, 2).flat, MEASURES, strict=True):
        edges = bin_edges(measure, a, b)
        shaded = [g for g in gaps if g.measure == measure]
        for i, gap in enumerate(shaded):
            label = f"gap in {b.name}" if i == 0 else None  # one legend entry for all of them
            axes.axvspan(gap.low, gap.high, color="#d62728", alpha=0.15, linewidth=0, label=label)
        for stats, colour in ((a, "#1f77b4"), (b, "#ff7f0e")):
            values = getattr(stats, measure)
            share = np.full(len(values), 100.0 / len(values))
            axes.hist(values, edges, weights=share, color=colour, alpha=0.5, label=f"{stats.name} ({len(stats)})")
        axes.set_title(TITLES[measure])
        axes.set_ylabel("share of faces, %")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"dualface inspect: does {b.name} cover {a.name}? {len(gaps)} gap(s)")
    figure.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", pnginfo=png_info("face-set coverage chart"))
    write_output(Path(path), buffer.getvalue())


def inspect_sets(
    a_folder: Path,
    b_folder: Path,
    output_png: Path | None,
    names: tuple[str, str] | None = None,
    min_faces: int = 5,
) -> tuple[FaceStats, FaceStats, list[Gap]]:
    """Measure both face folders, find what B lacks for swapping A into it, and chart both to
    `output_png` (None: no chart)."""
    a_folder, b_folder = Path(a_folder), Path(b_folder)
    if names is None:
        names = (a_folder.name, b_folder.name)
        if names[0] == names[1]:  # e.g. alice/faces and bob/faces
            names = (f"{names[0]} (A)", f"{names[1]} (B)")
    a = load_stats(a_folder, names[0])
    b = load_stats(b_folder, names[1])
    gaps = find_gaps(a, b, min_faces)
    log.info("%s: %d faces, %s: %d faces, %d gap(s)", a.name, len(a), b.name, len(b), len(gaps))
    if output_png is not None:
        output_png = Path(output_png)
        if output_png.is_dir() or output_png.suffix.lower() != ".png":
            raise DualfaceError(f"{output_png}: give a .png file name for the chart")
        ensure_writable_dir(output_png.parent)
        plot_coverage(a, b, gaps, output_png)
    return a, b, gaps
