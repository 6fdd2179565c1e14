"""An expression judge: a small network that reads how open a face's mouth and eyes are, trained on real faces
of every identity, whose verdict on a swap is a loss.

Each decoder learns to draw only its own person's faces from their codes. A swap hands it another person's
codes, and where those sit away from its own (another camera, another light), it draws its person's usual
mouth, nearly closed, whatever the code says: the mouth into s1 follows Obama's at 0.46 after an hour. A
cycle through the other decoder charges that (docs/quality.md, "A cycle through the other decoder"), but the code
carries who the face is as well as its expression, so the cycle pulled the identity across with the mouth.
The judge sees only the expression: the lip gap over the mouth's width and the eyes' aspect ratio, both
scale-free and the same for either person, so holding a swap to its source's openings asks the decoder
for the source's expression and nothing of the source's face.

The judge trains on real (augmented, recoloured) faces, and, once it judges, on each decoder's drawing of its
own faces, whose openings are known (their targets'): a judge of photos alone read the swaps' drawn style
from outside what it knew, and at weight 1 the decoders found patterns there that it misread (a yellow grid
into Obama, docs/quality.md "An expression judge"). Its own weights get no gradient from the swaps: a judge the
decoders could train would learn to agree with them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dualface.gan import frozen
from dualface.landmarks import mouth_opening
from dualface.pose import eye_opening
from dualface.types import Landmarks

JUDGE_FILE = "expression-judge.safetensors"  # beside the checkpoints, as the critics: training state


def openings(points: Landmarks) -> np.ndarray:
    """(2,) float32: the mouth's and the eyes' opening of one face's 68 landmarks."""
    return np.array([mouth_opening(points), eye_opening(points)], np.float32)


class ExpressionJudge(nn.Module):
    """(B, 3, S, S) faces in [0, 1] -> (B, 2) mouth and eye openings. It looks at 64 px: an opening is a
    few pixels of lip or lid at that size, and a quarter of the pixels is a quarter of the cost."""

    def __init__(self, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):  # 64 -> 4 px
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 16, 2))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(faces, size=(64, 64), mode="area") if faces.shape[-1] != 64 else faces
        return self.net(small * 2 - 1)


def judge_loss(judge: nn.Module, faces: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The judge's L1 error on faces (detached: real ones, or drawn ones of known expression) against the
    openings of their landmarks."""
    return (judge(faces.detach().float()) - truth).abs().mean()


def swap_loss(judge: nn.Module, swaps: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """How far the swaps' openings, as the judge reads them, are from their sources' (the judge's own
    weights get no gradient)."""
    with frozen(judge):
        return (judge(swaps.float()) - truth).abs().mean()
