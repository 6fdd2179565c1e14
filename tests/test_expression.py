import numpy as np
import torch

from dualface.augment import sample_batch
from dualface.config import AugmentConfig
from dualface.data import load_face_set
from dualface.expression import ExpressionJudge, judge_loss, openings, swap_loss
from dualface.landmarks import mouth_opening
from dualface.model import ModelConfig
from dualface.pose import eye_opening


def test_openings_are_the_landmarks_mouth_and_eyes(face_dirs):
    faces = load_face_set(face_dirs[0], ModelConfig.from_preset("lite"))
    for points in faces.landmarks[:5]:
        assert np.allclose(openings(points), [mouth_opening(points), eye_opening(points)])
    mouths = np.array([openings(p)[0] for p in faces.landmarks])
    assert mouths.max() - mouths.min() > 0.1  # s1 speaks: open and closed mouths both in the set


def test_judge_learns_to_read_the_mouth_from_real_faces(face_dirs):
    """Trained on augmented real faces of both speakers, the judge reads mouth opening on faces it was not
    shown in that augmentation: it ranks them as their landmarks do, which an untrained judge does not."""
    cfg = AugmentConfig(warp=0.0)
    sets = [load_face_set(d, ModelConfig.from_preset("lite"), n) for d, n in zip(face_dirs, ("s1", "b"), strict=True)]
    torch.manual_seed(0)
    judge = ExpressionJudge()
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)

    def batch(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [sample_batch(s, 64, 16, rng, cfg) for s in sets]
        faces = np.concatenate([p.targets for p in parts])
        truth = np.concatenate([p.expressions for p in parts])
        return torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(truth)

    seen, truth = batch(np.random.default_rng(99))

    def agreement() -> float:
        with torch.no_grad():
            return float(np.corrcoef(judge(seen)[:, 0].numpy(), truth[:, 0].numpy())[0, 1])

    before = agreement()
    rng = np.random.default_rng(0)
    for _ in range(400):
        optimizer.zero_grad()
        judge_loss(judge, *batch(rng)).backward()
        optimizer.step()
    assert agreement() > 0.6 > before


def test_swap_loss_teaches_the_swap_and_never_the_judge():
    judge = ExpressionJudge()
    swaps = torch.rand(2, 3, 128, 128, requires_grad=True)
    swap_loss(judge, swaps, torch.tensor([[0.4, 0.3], [0.0, 0.3]])).backward()
    assert swaps.grad is not None and swaps.grad.abs().sum() > 0
    assert all(p.grad is None for p in judge.parameters())
    assert all(p.requires_grad for p in judge.parameters())  # free again for its own step
