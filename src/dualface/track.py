"""Following faces through a video: detect every few frames, track in between, smooth the landmarks.

Between detections the landmark predictor is placed on the box that the previous frame's landmarks imply
(`align.box_from_landmarks`), which costs a millisecond where a detection costs ten or more. dlib's
predictor always returns a face-shaped set of points, even on a wall, so whether the face is still there
is judged by appearance instead: the normalised cross-correlation of a 32 px aligned thumbnail with the
previous frame's. Measured on the footage in ../shared: the same face frame to frame >= 0.84 (a fast head
turn at 720p), two different people 0.32-0.69, the predictor slid onto background mostly < 0.3. A track
that loses continuity is dropped and the detector runs on that frame; so do tracks that several
detections in a row fail to confirm.

Landmarks are smoothed with the 1-euro filter (G. Casiez, N. Roussel and D. Vogel, "1 Euro Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012): strong smoothing while a
point holds still, little while it moves fast, so jitter goes without making the mouth lag.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from dualface.align import box_from_landmarks, compose, crop_matrix, cut, to_mean_face
from dualface.detect import Detection, box_size, detect_faces, iou
from dualface.identity import embed_face
from dualface.landmarks import predict_landmarks
from dualface.types import Box, Embedding, Frame, Landmarks, Matrix

# Faces are detected at a scale where the smallest tracked face spans this many pixels: comfortably above
# the 80 px window of dlib's HOG detector.
DETECT_FACE_PX = 100
RETRY_SIDE = 1920  # the longest side of a frame's second, closer look for faces


@dataclass
class TrackerConfig:
    detector: str = "hog"
    detect_every: int = 5  # frames between detections while faces are tracked
    detect_size: int = 640  # longest side of the frame given to the detector when scanning for new faces
    min_size: float = 0.0  # faces smaller than this (box side, source pixels) are ignored
    min_continuity: float = 0.75  # thumbnail correlation with the previous frame below which a face is lost
    max_misses: int = 2  # detections in a row that may miss a tracked face before it is dropped
    still: bool = False  # every frame stands alone: detect all, track nothing, smooth nothing
    smooth: bool = True
    smooth_cutoff: float = 1.5  # Hz: the 1-euro filter's cutoff for a still face
    smooth_beta: float = 8.0  # cutoff rise, Hz per face-width/s of speed
    embed_every: int = 100  # frames between identity embeddings of a track; 0 turns them off


THUMBNAIL = crop_matrix(32, 0.8, "face")


def thumbnail(frame: Frame, to_mean: Matrix) -> np.ndarray:
    """A (32, 32) zero-mean, unit-norm grey aligned face: its dot product with another is their NCC.

    Args:
        to_mean: `align.to_mean_face` of the face's landmarks.
    """
    face = cut(frame, compose(THUMBNAIL, to_mean), 32, fast=True)  # coarse shape is all a correlation needs
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey -= grey.mean()
    return grey / (np.linalg.norm(grey) + 1e-6)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """The 1-euro filter over (68, 2) landmarks, with speed measured in face widths per second so the
    same settings hold at any resolution."""

    cutoff: float
    beta: float
    derivative_cutoff: float = 1.0
    value: np.ndarray | None = None
    speed: np.ndarray | None = None

    def __call__(self, points: Landmarks, dt: float, face_size: float) -> Landmarks:
        if self.value is None:
            self.value, self.speed = points.astype(np.float64), np.zeros(len(points))
            return points
        velocity = np.linalg.norm(points - self.value, axis=1) / dt / max(face_size, 1.0)
        self.speed = self.speed + _alpha(self.derivative_cutoff, dt) * (velocity - self.speed)
        alpha = _alpha(self.cutoff + self.beta * self.speed, dt)[:, None]
        self.value = self.value + alpha * (points - self.value)
        return self.value.astype(np.float32)


@dataclass
class Track:
    """One face followed through the video."""

    id: int
    landmarks: Landmarks  # as predicted on the latest frame
    smoothed: Landmarks  # what alignment uses
    score: float  # the latest detector score
    detected: bool  # found by the detector on the latest frame (else tracked)
    last_index: int
    thumbnail: np.ndarray  # (32, 32) zero-mean, unit-norm grey aligned face of the latest frame
    filter: OneEuroFilter | None = None
    misses: int = 0
    embedding: Embedding | None = None
    embedding_index: int = -1
    box: Box = field(init=False)  # the detector-style box `landmarks` imply

    def __post_init__(self) -> None:
        self.box = box_from_landmarks(self.landmarks)

    def move(self, landmarks: Landmarks, box: Box, thumb: np.ndarray) -> None:
        self.landmarks, self.box, self.thumbnail, self.detected = landmarks, box, thumb, False


@dataclass
class FaceTracker:
    """Feed it frames in order; `update` returns the faces on each."""

    config: TrackerConfig
    fps: float = 25.0
    tracks: list[Track] = field(default_factory=list)
    last_detection: int = -(10**9)
    next_id: int = 0
    detections_run: int = 0

    def update(self, frame: Frame, index: int) -> list[Track]:
        cfg = self.config
        if cfg.still:
            self.tracks = []
        lost = self._follow(frame, index)
        keyframe = not self.tracks or lost or index - self.last_detection >= cfg.detect_every
        if keyframe:
            self._detect(frame, index)
        for track in self.tracks:
            self._smooth(track, index)
            if cfg.embed_every and (track.embedding is None or index - track.embedding_index >= cfg.embed_every):
                track.embedding, track.embedding_index = embed_face(frame, track.smoothed), index
            track.last_index = index
        return self.tracks

    def _follow(self, frame: Frame, index: int) -> bool:
        """Move every track onto this frame; True when one was lost."""
        kept = []
        for track in self.tracks:
            landmarks = predict_landmarks(frame, track.box)
            to_mean = to_mean_face(landmarks)
            box = box_from_landmarks(landmarks, to_mean)
            if not self._plausible(box, frame, previous=track.box):
                continue
            thumb = thumbnail(frame, to_mean)
            if float((thumb * track.thumbnail).sum()) < self.config.min_continuity:
                continue
            track.move(landmarks, box, thumb)
            kept.append(track)
        lost = len(kept) < len(self.tracks)
        self.tracks = kept
        return lost

    def _plausible(self, box: Box, frame: Frame, previous: Box | None = None) -> bool:
        left, top, right, bottom = box
        height, width = frame.shape[:2]
        cx, cy = (left + right) / 2, (top + bottom) / 2
        if not (0 <= cx < width and 0 <= cy < height):
            return False
        size = right - left
        if size < max(self.config.min_size, 8):
            return False
        if previous is not None:
            ratio = size / box_size(previous)
            if not 0.7 < ratio < 1.4:  # a face does not change size by this much in one frame
                return False
        return True

    def _detect(self, frame: Frame, index: int) -> None:
        cfg = self.config
        self.last_detection = index
        scan = min(1.0, cfg.detect_size / max(frame.shape[:2]))
        if self.tracks and not cfg.still:
            smallest = min(box_size(t.box) for t in self.tracks)
            scale = min(scan, DETECT_FACE_PX / smallest)
        else:
            scale = scan
        detections = detect_faces(frame, cfg.detector, scale)
        self.detections_run += 1
        closer = min(1.0, RETRY_SIDE / max(frame.shape[:2]))
        if not detections and not self.tracks and scale < closer:
            # Small faces vanish at the scanning scale: look once more, at full size up to full HD (a 24 MP
            # photo at full size took the CNN detector 12 GB and minutes).
            detections = detect_faces(frame, cfg.detector, closer)
            self.detections_run += 1
        detections = [d for d in detections if box_size(d.box) >= cfg.min_size]
        unmatched = self._match(detections)
        for detection in unmatched:
            self._start_track(frame, index, detection)

    def _match(self, detections: list[Detection]) -> list[Detection]:
        """Confirm tracks with the detections that overlap them; return the detections left over."""
        remaining = list(detections)
        kept = []
        for track in self.tracks:
            box = track.box
            best = max(remaining, key=lambda d: iou(box, d.box), default=None)
            if best is not None and iou(box, best.box) > 0.3:
                remaining.remove(best)
                track.score, track.detected, track.misses = best.score, True, 0
                kept.append(track)
            else:
                track.misses += 1
                if track.misses <= self.config.max_misses:
                    kept.append(track)
        self.tracks = kept
        return remaining

    def _start_track(self, frame: Frame, index: int, detection: Detection) -> None:
        landmarks = predict_landmarks(frame, detection.box)
        # A second pass from the box the landmarks imply: the predictor was trained on HOG boxes, and this
        # also fits it to the CNN detector's differently-shaped boxes.
        landmarks = predict_landmarks(frame, box_from_landmarks(landmarks))
        to_mean = to_mean_face(landmarks)
        if not self._plausible(box_from_landmarks(landmarks, to_mean), frame):
            return
        cfg = self.config
        smoother = OneEuroFilter(cfg.smooth_cutoff, cfg.smooth_beta) if cfg.smooth and not cfg.still else None
        track = Track(
            self.next_id,
            landmarks,
            landmarks,
            detection.score,
            True,
            index,
            thumbnail(frame, to_mean),
            smoother,
        )
        self.next_id += 1
        self.tracks.append(track)

    def _smooth(self, track: Track, index: int) -> None:
        if track.filter is None:
            track.smoothed = track.landmarks
            return
        dt = max(index - track.last_index, 1) / self.fps
        track.smoothed = track.filter(track.landmarks, dt, box_size(track.box))
