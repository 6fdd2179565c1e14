"""The data conventions every stage shares, written once.

Colour order is RGB everywhere (PyAV's `rgb24`, dlib and Pillow all speak it); OpenCV calls that need BGR
convert at the call site.
"""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

Frame: TypeAlias = npt.NDArray[np.uint8]  # (H, W, 3) RGB
Landmarks: TypeAlias = npt.NDArray[np.float32]  # (68, 2) x, y in pixels of the image they belong to
Matrix: TypeAlias = npt.NDArray[np.float32]  # (2, 3) affine: source pixel -> aligned-face pixel
Mask: TypeAlias = npt.NDArray[np.float32]  # (H, W) in [0, 1]
Embedding: TypeAlias = npt.NDArray[np.float32]  # (128,) dlib face descriptor
Box: TypeAlias = tuple[float, float, float, float]  # left, top, right, bottom in pixels
