"""Where dlib's pretrained weights live: inside the `face-recognition-models` package, never downloaded.

`import face_recognition_models` needs `pkg_resources`, which current setuptools no longer ships, so the
package's folder is found with `importlib.util.find_spec` instead of importing it.
"""

import importlib.util
from functools import cache
from pathlib import Path

from dualface.errors import DualfaceError

SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"


@cache
def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise DualfaceError("package face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(spec.origin).parent / "models"


def weights_path(name: str) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise DualfaceError(f"dlib weights {name} are missing from {models_dir()}; reinstall face-recognition-models")
    return path
