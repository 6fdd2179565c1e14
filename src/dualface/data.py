"""Training data: the face folders that `dualface extract` writes, loaded into memory at the model's crop.

Each face is re-cut from its extracted PNG into a "work" crop a little larger than the model's (so that
augmentation can rotate and shift without running off the edge), and its landmarks are carried into the
same coordinates; masks are drawn from them after augmentation.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dualface.align import compose, crop_matrix, cut, invert, matrix_scale, transform_points
from dualface.alignments import face_landmarks, read_face_png, read_face_record
from dualface.config import CUT
from dualface.errors import DualfaceError
from dualface.landmarks import mouth_opening
from dualface.model import ModelConfig

log = logging.getLogger(__name__)

MARGIN = 1.25  # the work crop's side over the model crop's


@dataclass
class FaceSet:
    """One identity's faces, ready for augmentation."""

    name: str
    faces: np.ndarray  # (N, W, W, 3) uint8 RGB work crops, W = round(size * MARGIN)
    landmarks: np.ndarray  # (N, 68, 2) float32 in work-crop pixels
    files: list[str]
    embedding: np.ndarray | None = None  # (128,) mean dlib identity embedding of the faces, when they have one
    _draw: tuple[float, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.faces)

    def draw_probabilities(self, balance: float) -> np.ndarray | None:
        """Each face's chance of being drawn (None: uniform); computed once per `balance`."""
        if balance <= 0:
            return None
        if self._draw is None or self._draw[0] != balance:
            self._draw = (balance, expression_balance(self.landmarks, balance))
        return self._draw[1]


EXPRESSION_BINS = (6, 5)  # mouth opening, head turn


def expression_strata(landmarks: np.ndarray) -> np.ndarray:
    """Each face's bin of (mouth opening, head turn), equal-width bins between the set's 1st and 99th
    percentiles. Head turn is the nose tip's offset from the middle of the jaw's ends, over the jaw's width:
    a 2D proxy for yaw that needs no camera model."""
    points = np.asarray(landmarks, np.float64)
    mouth = np.array([mouth_opening(p) for p in points])
    jaw = np.maximum(np.abs(points[:, 16, 0] - points[:, 0, 0]), 1e-6)
    turn = (points[:, 30, 0] - (points[:, 0, 0] + points[:, 16, 0]) / 2) / jaw
    index = np.zeros(len(points), np.int64)
    for values, bins in zip((mouth, turn), EXPRESSION_BINS, strict=True):
        low, high = np.percentile(values, [1, 99])
        edges = np.linspace(low, high, bins + 1)[1:-1]
        index = index * bins + np.digitize(values, edges)
    return index


def expression_balance(landmarks: np.ndarray, balance: float) -> np.ndarray:
    """Draw probabilities that flatten the set's spread of expressions and turns: a face in a bin of n
    faces weighs n**-balance. 0 is uniform; 1 draws every bin equally often, which repeats the one wide-open
    mouth of a bin as often as a thousand closed ones, so values around 0.5 are the useful ones."""
    strata = expression_strata(landmarks)
    counts = np.bincount(strata)
    weights = counts[strata].astype(np.float64) ** -balance
    return weights / weights.sum()


def work_size(cfg: ModelConfig) -> int:
    return round(cfg.size * MARGIN)


def work_matrix(record: dict, cfg: ModelConfig) -> np.ndarray:
    """Affine from the extracted crop's pixels to the work crop's."""
    extracted = crop_matrix(record["size"], record["coverage"], record["centering"])
    work = crop_matrix(work_size(cfg), cfg.coverage / MARGIN, cfg.centering)
    return compose(work, invert(extracted))


def load_face(path: Path, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """One extracted face as (work crop, its landmarks in work-crop pixels, the PNG's size)."""
    face, record = read_face_png(path)
    if face.shape[0] != record.get("size"):
        raise DualfaceError(f"{path}: image is {face.shape[0]} px but its record says {record.get('size')}")
    to_work = work_matrix(record, cfg)
    size = work_size(cfg)
    work = cut(face, to_work, size)
    return work, transform_points(face_landmarks(record), to_work), face.shape[0]


def face_files(folder: Path) -> list[Path]:
    """The face PNGs of a folder that `dualface extract` wrote, sorted; a one-line error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DualfaceError(f"{folder}: no such face folder")
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DualfaceError(f"{folder}: holds no face PNGs; run `dualface extract` into it first")
    return files


def cut_otherwise(record: dict) -> bool:
    """Whether a face shrank into its crop by another cut than today's (`config.CUT`): "area" (dualface
    before 2026-12-06) blurred it, and a face without the record (before 2026-11-25) may come from the plain
    warp that aliased it before 2026-11-24 (`bench/extract_alias.py`, `bench/cut.py`)."""
    return record.get("cut") != CUT and matrix_scale(np.array(record["matrix"], np.float32)) < 1


def warn_if_cut_otherwise(folder: Path, files: list[Path]) -> None:
    if old := sum(cut_otherwise(read_face_record(p)) for p in files):
        log.warning(
            "%s: %d faces larger than the crop were cut by an older dualface, which blurred or aliased them; "
            "extract them again into a new folder (or with --overwrite)",
            folder,
            old,
        )


def load_face_set(
    folder: Path, cfg: ModelConfig, name: str | None = None, limit: int | None = None, progress: bool = False
) -> FaceSet:
    """Every extracted face in `folder` (at most `limit`, spread evenly), at the model's crop."""
    folder = Path(folder)
    files = face_files(folder)
    if limit and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    warn_if_cut_otherwise(folder, files)
    # PNG decoding and cv2 release the GIL: two threads load twice as fast on two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        loaded = list(
            tqdm(
                pool.map(lambda p: load_face(p, cfg), files),
                total=len(files),
                unit="face",
                desc=f"loading {folder.name}",
                disable=not progress,
                leave=False,
            )
        )
    sizes = {size for _, _, size in loaded}
    if len(sizes) > 1:
        raise DualfaceError(f"{folder}: faces of mixed sizes {sorted(sizes)}; extract them with one --size")
    faces = np.stack([work for work, _, _ in loaded])
    landmarks = np.stack([points for _, points, _ in loaded]).astype(np.float32)
    return FaceSet(name or folder.name, faces, landmarks, [p.name for p in files], mean_embedding(files))


def mean_embedding(files: list[Path], most: int = 500) -> np.ndarray | None:
    """The identity of a face set: the mean of its faces' embeddings (extraction stores one per face)."""
    chosen = [files[i] for i in np.linspace(0, len(files) - 1, min(most, len(files))).round().astype(int)]
    found = [r["embedding"] for r in map(read_face_record, chosen) if r.get("embedding") is not None]
    return np.mean(found, 0).astype(np.float32) if found else None


def center_crop(faces: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Work crops (N, W, W, 3) and their landmarks -> the unaugmented model crops (N, size, size, 3)."""
    margin = (faces.shape[1] - size) // 2
    return np.ascontiguousarray(faces[:, margin : margin + size, margin : margin + size]), landmarks - margin
