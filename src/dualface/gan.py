"""A patch critic for sharpness: DeepFaceLab's "GAN power". Reconstruction losses are minimised by the
average of the faces a code could stand for, which is a blur; a critic that tells real face patches from
drawn ones pushes the decoders to draw texture instead.

The critic is pix2pix's PatchGAN (Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017), thin enough for a CPU: one logit per ~30 px patch, judged inside the face mask only
(the background is not what we paste). The loss is the non-saturating logistic one (Goodfellow et al. 2014).
It is off by default, and, where switched on, starts after `--gan-after` steps, once the reconstruction has
settled: a critic on faces that are still blobs teaches the decoders noise.

The code critic is DeepFaceLab's "true face power" for every identity at once: a small classifier that
guesses whose face a code (what the shared encoder hands the decoders) came from, and a loss that pushes the
encoder towards codes it cannot tell apart. A swap hands one person's codes to another's decoder, which
trained only on its own person's codes; where the two people's codes sit in different regions (other
lighting, another camera), the decoder draws what it knows from that region, not the expression.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dualface.checkpoint import load_checkpoint, load_optimizer, save_checkpoint
from dualface.errors import DualfaceError

CRITIC_FILE = "critic.safetensors"  # beside the checkpoints: the critic is training state, never inference
CODE_CRITIC_FILE = "code-critic.safetensors"


class PatchCritic(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width):  # three stride-2 convs: a 16x16 grid of patches at 128 px
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(channels, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) faces in [0, 1] -> (B, 1, S/8, S/8) logits: real > 0."""
        return self.net(faces * 2 - 1)


@contextmanager
def frozen(critic: nn.Module) -> Iterator[nn.Module]:
    """The critic as a fixed judge: what it judges gets gradients, its own weights none."""
    critic.requires_grad_(False)
    try:
        yield critic
    finally:
        critic.requires_grad_(True)


def generator_loss(critic: nn.Module, drawn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How far the drawn faces are from passing as real (the critic's own weights get no gradient)."""
    with frozen(critic):
        return F.softplus(-critic(drawn * mask)).mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, drawn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The critic's logistic loss: real faces up, drawn faces (detached) down."""
    return F.softplus(-critic(real * mask)).mean() + F.softplus(critic(drawn.detach() * mask)).mean()


class CodeCritic(nn.Module):
    def __init__(self, channels: int, identities: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, identities),
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) codes -> (B, identities) logits of whose face each came from."""
        return self.net(codes)


def confusion_loss(critic: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """How far the code critic is from being unable to tell whose codes these are: the KL divergence of
    its guess from a uniform one, 0 when it cannot tell (its own weights get no gradient)."""
    with frozen(critic):
        guess = F.log_softmax(critic(codes), 1)
        return -guess.mean(1).mean() - math.log(guess.shape[1])


def code_critic_loss(critic: nn.Module, codes: torch.Tensor, identity: int) -> torch.Tensor:
    """The code critic's cross entropy on (detached) codes, all of the identity numbered `identity`."""
    whose = torch.full((len(codes),), identity, dtype=torch.long, device=codes.device)
    return F.cross_entropy(critic(codes.detach()), whose)


def save_critic(
    folder: Path, critic: nn.Module, optimizer: torch.optim.Optimizer, step: int, file: str = CRITIC_FILE
) -> None:
    save_checkpoint(Path(folder) / file, critic, optimizer, step, {"role": file.removesuffix(".safetensors")})


def load_critic(
    folder: Path, critic: nn.Module, optimizer: torch.optim.Optimizer, file: str = CRITIC_FILE
) -> int | None:
    """Restore a resumed run's critic; the step it was saved at, or None where there is none."""
    path = Path(folder) / file
    if not path.exists():
        return None
    saved = load_checkpoint(path, model=False)
    try:
        critic.load_state_dict(saved.model)
        load_optimizer(optimizer, saved.optimizer)
    except (RuntimeError, ValueError):
        raise DualfaceError(f"{path}: a critic of another shape; delete it to start the critic afresh") from None
    return saved.step
