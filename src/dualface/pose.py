"""Head pose and eye opening from 68 landmarks.

Pose is a Perspective-n-Point fit (`cv2.solvePnP`) of a generic rigid 3-D face to six landmarks: nose tip
(30), chin (8), outer eye corners (36, 45) and mouth corners (48, 54), the set popularised by S. Mallick,
"Head Pose Estimation using OpenCV and Dlib" (LearnOpenCV, 2016). The depths (how far each point sits
behind the nose tip) are that model's; the width and height are dlib's own mean face (`align.MEAN_FACE`),
so the average face the landmark predictor was trained on reads about (0, 0, 0) and real faces fit it better: on
the bundled GRID clips the six points reproject within 4.7% of the eye span on average, against 7.0% for
the original model, whose chin is 20% closer to the nose than dlib's point 8.

Six points, not 68: a generic depth is only known for these, and the jaw-line points are not fixed points
of the head (they slide along the visible contour as it turns). The chin does move with the jaw: on the
bundled GRID clips, opening the mouth fully moves pitch by 1-4 degrees. Pitch is also relative to a
generic face, so a person whose chin is long for their face reads a few degrees of looking up or down.

Eye opening is the eye aspect ratio of T. Soukupova and J. Cech, "Real-Time Eye Blink Detection using
Facial Landmarks", CVWW 2016.
"""

import cv2
import numpy as np

from dualface.align import MEAN_FACE
from dualface.landmarks import LEFT_EYE, RIGHT_EYE
from dualface.types import Landmarks

POSE_POINTS = np.array([30, 8, 36, 45, 48, 54])
# Depth behind the nose tip in the classic model's units, where the outer eye corners are 450 apart.
_DEPTHS = np.array([0.0, 65.0, 135.0, 135.0, 125.0, 125.0])
_EYE_SPAN = float(MEAN_FACE[45, 0] - MEAN_FACE[36, 0])

# Model axes are the camera's for a face looking straight into it: x to the image right, y down, z away
# from the camera. Units are dlib's mean-face box; the nose tip is the origin.
MODEL_POINTS = np.column_stack([MEAN_FACE[POSE_POINTS] - MEAN_FACE[30], _DEPTHS * _EYE_SPAN / 450.0]).astype(np.float64)

# Each eye's points by role: outer corner, upper lid x2, inner corner, lower lid x2 (the left eye mirrored).
EYE_ROLES = (tuple(RIGHT_EYE.tolist()), tuple(LEFT_EYE[[3, 2, 1, 0, 5, 4]].tolist()))


def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    """A pinhole camera with focal length equal to the image width and the principal point at the centre:
    the usual guess for an uncalibrated camera (a field of view of 53 degrees)."""
    height, width = image_size
    return np.array([[width, 0, (width - 1) / 2], [0, width, (height - 1) / 2], [0, 0, 1]], np.float64)


def euler_angles(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a model-to-camera rotation, in the conventions of `head_pose`.

    The rotation is decomposed as R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch) about the camera's axes: the head
    pitches, then turns, then the picture of it is rotated in the image plane. So roll is exactly the
    in-plane angle, and rotating an image changes roll alone.
    """
    yaw = np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0))
    pitch = -np.arctan2(rotation[2, 1], rotation[2, 2])
    roll = np.arctan2(rotation[1, 0], rotation[0, 0])
    return np.degrees([yaw, pitch, roll])


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The model-to-camera rotation of a head at (yaw, pitch, roll) degrees: the inverse of `euler_angles`."""
    y, p, r = np.radians([-yaw, -pitch, roll])
    rot_x = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rot_y = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rot_z = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Head pose of a face, in degrees.

    Args:
        landmarks: (68, 2) landmarks in pixels of the image.
        image_size: (height, width) of that image.

    Returns:
        (3,) float64 (yaw, pitch, roll), zero for a face looking straight into the camera:
        yaw > 0 when the person turns to their left (the nose moves to the image's right);
        pitch > 0 when they look up (the nose moves up in the image);
        roll > 0 when the head tilts towards their left shoulder (clockwise on screen: the eye on the
        image's right goes down).
        A mirrored image gives the same pitch and negated yaw and roll. The angles are those of a generic
        face: a person whose proportions differ from it reads several degrees off on a frontal view (the
        bundled GRID speakers, filmed head-on, average -3 to 17 degrees of yaw and 11 to 17 of pitch over
        a clip), so compare poses of one person rather than trusting a single angle.
    """
    points = np.asarray(landmarks, np.float64)[POSE_POINTS]
    camera = camera_matrix(image_size)
    # Start the iterative fit from the face seen frontally at its apparent size and in-plane angle:
    # six points have more than one local minimum, and this start picks the one a head can be in.
    eye_line = points[3] - points[2]
    roll = np.arctan2(eye_line[1], eye_line[0])
    distance = camera[0, 0] * _EYE_SPAN / max(float(np.linalg.norm(eye_line)), 1e-6)
    centre = (points[0] - camera[:2, 2]) * distance / camera[0, 0]
    rvec = np.array([[0.0], [0.0], [roll]])
    tvec = np.array([[centre[0]], [centre[1]], [distance]])
    _, rvec, tvec = cv2.solvePnP(
        MODEL_POINTS, points, camera, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    return euler_angles(cv2.Rodrigues(rvec)[0])


def eye_opening(landmarks: Landmarks) -> float:
    """Eye aspect ratio averaged over both eyes: lid gap over eye width, about 0.25-0.4 for open eyes and
    under 0.15 for closed ones (0.12-0.13 on a blink in GRID bbaf2n); scale-free."""
    points = np.asarray(landmarks, np.float64)
    ratios = []
    for outer, upper1, upper2, inner, lower1, lower2 in EYE_ROLES:
        gap = np.linalg.norm(points[upper1] - points[lower2]) + np.linalg.norm(points[upper2] - points[lower1])
        width = np.linalg.norm(points[outer] - points[inner])
        ratios.append(gap / (2 * max(width, 1e-6)))
    return float(np.mean(ratios))
