"""The patch critic (--gan-power), the code critic (--code-power) and the paste mask cut to the decoder's own
mask (--mask auto)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dualface import gan
from dualface.checkpoint import latest_checkpoint, load_checkpoint
from dualface.composite import MASK_SIZE, Face, face_mask, model_input
from dualface.config import PasteConfig, TrainConfig
from dualface.detect import detect_faces
from dualface.errors import DualfaceError
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


def test_code_critic_tells_whose_codes_and_its_loss_pulls_them_together():
    """Codes of two people that sit apart (another camera, other light): the critic must learn to tell
    them apart, the confusion loss must then be well above its floor of 0 (a critic that cannot tell), and
    following that loss's gradient (the encoder's side) must bring the two people's codes together."""
    torch.manual_seed(0)
    shift = torch.zeros(1, 8, 4, 4)
    shift[:, :2] = 1.5  # the two people differ along a few channels
    first = torch.randn(32, 8, 4, 4)
    second = torch.randn(32, 8, 4, 4) + shift
    critic = gan.CodeCritic(8, 2, width=16)
    with torch.no_grad():  # a critic that guesses even odds for every code: nothing to confuse
        untold = gan.CodeCritic(8, 2, width=16)
        untold.net[-1].weight.zero_()
        untold.net[-1].bias.zero_()
        assert gan.confusion_loss(untold, first).item() == pytest.approx(0.0, abs=1e-6)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        (gan.code_critic_loss(critic, first, 0) + gan.code_critic_loss(critic, second, 1)).backward()
        optimizer.step()
    with torch.no_grad():
        told = (critic(first).argmax(1) == 0).float().mean() + (critic(second).argmax(1) == 1).float().mean()
    assert told / 2 > 0.95
    confused = gan.confusion_loss(critic, second).item()
    assert confused > 0.3

    drawn = second.clone().requires_grad_(True)
    critic.zero_grad(set_to_none=True)
    gan.confusion_loss(critic, drawn).backward()
    assert drawn.grad is not None and drawn.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())  # the confusion loss trains the encoder only

    # the game as training plays it: the critic learns on, the codes follow the confusion loss
    codes = second.clone().requires_grad_(True)
    encoder = torch.optim.SGD([codes], lr=5.0)
    for _ in range(40):
        for _ in range(5):
            optimizer.zero_grad()
            (gan.code_critic_loss(critic, first, 0) + gan.code_critic_loss(critic, codes, 1)).backward()
            optimizer.step()
        encoder.zero_grad()
        gan.confusion_loss(critic, codes).backward()
        encoder.step()
    apart = (second.mean(0) - first.mean(0)).norm()
    assert (codes.detach().mean(0) - first.mean(0)).norm() < 0.5 * apart


def test_code_power_is_refused_for_liae(face_dirs, tmp_path):
    cfg = TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "m", iterations=1, liae="s1", code_power=0.1)
    with pytest.raises(DualfaceError, match="--code-power"):
        train(cfg)


def test_training_with_the_critics_resumes_exactly(face_dirs, tmp_path):
    settings = dict(batch_size=4, warmup=2, save_every=3, preview_every=3, progress=False, tensorboard=False, seed=0)
    settings |= dict(gan_power=0.1, gan_after=1, code_power=0.1, learn_mask=True, threads=2)  # one summation order
    straight = train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "one", iterations=6, **settings))
    train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "two", iterations=3, **settings))
    resumed = train(
        TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "two", iterations=6, resume=True, **settings)
    )
    assert resumed.weights_sha256 == straight.weights_sha256  # the critics came back as they were saved
    assert load_checkpoint(tmp_path / "two" / gan.CRITIC_FILE, model=False).step == 6
    assert load_checkpoint(tmp_path / "two" / gan.CODE_CRITIC_FILE, model=False).step == 6
    saved = load_checkpoint(latest_checkpoint(tmp_path / "two"))
    assert saved.meta["model_config"]["learn_mask"] and "decoders.s1.to_mask.weight" in saved.model
    assert not any(k.startswith("critic") for k in saved.model)  # the critic is training state only
    # without either critic the same run draws something else: each critic's loss reached the model
    for left_out in (("gan_power", "gan_after"), ("code_power",)):
        plain = {k: v for k, v in settings.items() if k not in left_out}
        other = train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / left_out[0], iterations=6, **plain))
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
