"""The patch critic (--gan-power) and the paste mask cut to the decoder's own mask (--mask auto)."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dualface import gan
from dualface.checkpoint import latest_checkpoint, load_checkpoint
from dualface.composite import MASK_SIZE, Face, face_mask, model_input
from dualface.config import PasteConfig, TrainConfig
from dualface.detect import detect_faces
from dualface.landmarks import predict_landmarks
from dualface.train import train


def _faces(folder, count: int = 16) -> torch.Tensor:
    images = [np.asarray(Image.open(p).convert("RGB").resize((64, 64))) for p in sorted(folder.glob("*.png"))[:count]]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def test_critic_learns_to_tell_faces_from_their_blur(face_dirs):
    """What the critic is for: a blurred face (what a reconstruction loss draws) must score below a real
    one once the critic has trained a little; and the generator's loss must reach the drawing, not the
    critic's weights."""
    torch.manual_seed(0)
    real = _faces(face_dirs[0])
    blurred = F.avg_pool2d(F.pad(real, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    mask = torch.ones_like(real[:, :1])
    critic = gan.PatchCritic()
    optimizer = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    first = gan.critic_loss(critic, real, blurred, mask).item()
    for _ in range(60):
        optimizer.zero_grad()
        gan.critic_loss(critic, real, blurred, mask).backward()
        optimizer.step()
    with torch.no_grad():
        assert critic(real).mean() > critic(blurred).mean() + 1
    assert gan.critic_loss(critic, real, blurred, mask).item() < 0.5 * first

    drawn = blurred.clone().requires_grad_(True)
    critic.zero_grad(set_to_none=True)
    gan.generator_loss(critic, drawn, mask).backward()
    assert drawn.grad is not None and drawn.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters()) and all(p.requires_grad for p in critic.parameters())


def test_training_with_the_critic_resumes_exactly(face_dirs, tmp_path):
    settings = dict(batch_size=4, warmup=2, save_every=3, preview_every=3, progress=False, tensorboard=False, seed=0)
    settings |= dict(gan_power=0.1, gan_after=1, learn_mask=True, threads=2)  # one summation order for all runs
    straight = train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "one", iterations=6, **settings))
    train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "two", iterations=3, **settings))
    resumed = train(
        TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "two", iterations=6, resume=True, **settings)
    )
    assert resumed.weights_sha256 == straight.weights_sha256  # the critic came back as it was saved
    assert load_checkpoint(tmp_path / "two" / gan.CRITIC_FILE).step == 6
    saved = load_checkpoint(latest_checkpoint(tmp_path / "two"))
    assert saved.meta["model_config"]["learn_mask"] and "decoders.s1.to_mask.weight" in saved.model
    assert not any(k.startswith("critic") for k in saved.model)  # the critic is training state only
    # without the critic the same run draws something else: the critic's loss reached the model
    plain = {k: v for k, v in settings.items() if k not in ("gan_power", "gan_after")}
    other = train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "three", iterations=6, **plain))
    assert other.weights_sha256 != straight.weights_sha256


def test_auto_mask_keeps_only_what_the_decoder_drew_as_face(s1_frames):
    frame = s1_frames[0]
    landmarks = predict_landmarks(frame, detect_faces(frame)[0].box)
    size = 64
    matrix, crop = model_input(frame, landmarks, size, 0.6, "face")
    learned = np.ones((size, size), np.float32)
    learned[:, : size // 2] = 0  # the decoder drew backdrop on the left half of its crop
    face = Face(0, landmarks, matrix, crop, learned_mask=learned)
    plain = face_mask(face, PasteConfig(mask="extended"), size)
    auto = face_mask(face, PasteConfig(), size)
    half = MASK_SIZE // 2
    assert plain[:, : half - 8].max() > 0.9  # the landmarks' mask covers the left cheek
    assert auto[:, : half - 8].max() < 0.05 and auto[:, half + 8 :].max() > 0.9
    np.testing.assert_allclose(auto[:, half + 32 :], plain[:, half + 32 :], atol=0.01)
    # without a mask head, auto is the extended hull
    face.learned_mask = None
    np.testing.assert_array_equal(face_mask(face, PasteConfig(), size), plain)
