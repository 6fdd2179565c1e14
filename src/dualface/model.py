"""The autoencoder: one shared encoder, one decoder per identity.

`original` is, layer for layer, the classic deepfakes / faceswap "Original" model (64 px in and out,
82.06 M parameters with two decoders), kept so speed and quality compare with the peers on equal terms.
`lite` is the CPU default: the same shape at a fraction of the cost. `hd` (128 px, residual decoder,
learned mask) is for GPUs. Presets are data: `ModelConfig.from_preset("lite")`.

An "upscale" is conv 3x3 to 4x the filters, LeakyReLU 0.1, pixel shuffle x2 (W. Shi et al., "Real-Time
Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", 2016).
"""

from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dualface.errors import DualfaceError
from dualface.presets import MODEL_PRESETS, TRAINING

if TYPE_CHECKING:
    from dualface.recentre import CodeMove


@dataclass
class ModelConfig:
    """Shape of the autoencoder. Saved in every checkpoint, so a model folder is self-describing."""

    preset: str = "lite"
    size: int = 64  # input and output side, pixels
    encoder_kernel: int = 5
    encoder_widths: tuple[int, ...] = (128, 256, 512, 1024)  # stride-2 convs, 64 -> 4 px
    latent: int = 1024  # the dense bottleneck
    bottleneck_width: int = 1024  # channels of the 4x4 map the latent is reshaped into
    decoder_widths: tuple[int, ...] = (512, 256, 128, 64)  # the encoder's upscale, then the decoder's
    residual: bool = False  # a residual block after each decoder upscale
    shared_upscales: int = 0  # decoder upscales shared by every identity (a trunk), before each decoder's own
    learn_mask: bool = False  # decoders also predict the face mask
    # DeepFaceLab's LIAE: the identity every other is swapped into; "" keeps a decoder per identity (its DF).
    liae: str = ""
    coverage: float = 0.75  # share of the model's crop the face spans, jaw to jaw
    centering: str = "face"

    def __post_init__(self) -> None:
        self.encoder_widths = tuple(self.encoder_widths)
        self.decoder_widths = tuple(self.decoder_widths)
        down = 2 ** len(self.encoder_widths)
        if self.size % down or self.size // down != 4:
            raise DualfaceError(f"size {self.size} needs {len(self.encoder_widths)} stride-2 convs to reach 4x4")
        if len(self.decoder_widths) != len(self.encoder_widths):
            raise DualfaceError("decoder_widths must have one entry per encoder stage")
        if not 0 <= self.shared_upscales < len(self.decoder_widths) - 1:
            raise DualfaceError("shared_upscales must leave each identity at least one upscale of its own")
        if self.liae:
            self.shared_upscales = 0  # one decoder draws everyone: there is nothing left to share
        if not 0.2 <= self.coverage <= 1.0:
            raise DualfaceError(f"coverage must be between 0.2 and 1.0, not {self.coverage}")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        if name not in MODEL_PRESETS:
            raise DualfaceError(f"unknown preset {name!r}: choose one of {', '.join(MODEL_PRESETS)}")
        shape = {k: v for k, v in MODEL_PRESETS[name].items() if k not in TRAINING}
        return cls(**{**shape, "preset": name, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# A CPU convolution on a small map (at most SMALL_MAP output positions per image, `Conv2d(small_map=True)`)
# with at least DEEP inputs per output (in channels x kernel area) runs as one matrix product.
SMALL_MAP, DEEP = 16, 4096
# The decoders' face and mask heads as one convolution (`Decoder.forward`); off only to compare (bench/layers.py).
MERGED_HEADS = True


class Conv2d(nn.Conv2d):
    """nn.Conv2d that computes, on a CPU, a small deep map as one matrix product (im2col).

    `original`'s and `hd`'s last encoder convolution and their upscale work on 4x4 maps with 9,216-12,800
    inputs per output, where oneDNN's CPU kernels run far below the machine's peak and the same work as a
    matmul runs near it: `original`'s, forward and backward, 1.5-1.9x faster in bf16 and 1.1-1.2x in fp32 on
    an AVX-512-bf16 EPYC (`hd`'s not measured). On `lite`'s thin 4x4 layers (1,152-3,200 inputs) and on
    8x8 maps oneDNN was as fast or faster (0.6-1.0x), so those stay with it. Same weights, same sums.
    """

    def __init__(self, *args: Any, small_map: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.small_map = small_map  # its output is at most 4x4: the encoder's last convolution, an upscale's

    @property
    def as_matmul(self) -> bool:
        deep = self.in_channels * self.kernel_size[0] * self.kernel_size[1] >= DEEP
        return self.small_map and deep and self.groups == 1 and self.dilation == (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if x.device.type != "cpu" or not self.as_matmul or oh * ow > SMALL_MAP:
            return super().forward(x)
        # Columns are cut from the channels-last input in the order the weight has in memory (channel-major
        # for a contiguous weight, channel-minor for a channels-last one), so the weight and its gradient are
        # views: `F.unfold`'s columns made each step copy a channels-last weight (19M numbers in
        # `original`'s upscale) and its gradient back (these layers 1.3x faster without).
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))  # (B, H + 2ph, W + 2pw, C)
        windows = padded.unfold(1, kh, sh).unfold(2, kw, sw)  # (B, oh, ow, C, kh, kw), a view
        if self.weight.is_contiguous():
            cols, weight = windows.reshape(b * oh * ow, -1), self.weight.flatten(1)
        else:
            cols = windows.permute(0, 1, 2, 4, 5, 3).reshape(b * oh * ow, -1)
            weight = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)
        out = F.linear(cols, weight, self.bias)  # (B * oh * ow, C')
        return out.view(b, oh, ow, -1).permute(0, 3, 1, 2)  # (B, C', oh, ow), laid out channels-last


def to_channels_last(model: nn.Module) -> nn.Module:
    """`model` in the channels-last layout (oneDNN's fast path on CUDA and AVX-512 CPUs), except the weights
    of convolutions that run as matmuls: fused Adam steps each parameter in contiguous memory, so a
    channels-last weight cost a copy of itself and its gradient every step, and a contiguous one costs
    nothing on that path (`original` bf16 steps about 1.2x faster, bench/layers.py)."""
    model = model.to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, Conv2d) and module.as_matmul and module.weight.device.type == "cpu":  # the path's
            module.weight.data = module.weight.data.contiguous()
    return model


class Upscale(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, small_map: bool = False) -> None:
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels * 4, 3, padding=1, small_map=small_map)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(F.leaky_relu(self.conv(x), 0.1))  # (B, C*4, H, W) -> (B, C, 2H, 2W)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        return F.leaky_relu(x + y, 0.2)


class Inter(nn.Module):
    """Latent bottleneck: flat conv features -> the dense code -> an 8x8 map for the decoders."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self._build(cfg)

    def _build(self, cfg: ModelConfig) -> None:
        self.to_latent = nn.Linear(cfg.encoder_widths[-1] * 16, cfg.latent)
        self.from_latent = nn.Linear(cfg.latent, cfg.bottleneck_width * 16)
        self.upscale = Upscale(cfg.bottleneck_width, cfg.decoder_widths[0], small_map=True)  # 4x4 in
        self.bottleneck_width = cfg.bottleneck_width

    def bottleneck(self, features: torch.Tensor, move: "CodeMove | None" = None) -> torch.Tensor:
        x = self.to_latent(features)  # (B, latent)
        if move is not None:  # `recentre`: the video's mean code moved onto the target's
            x = move(x)
        x = self.from_latent(x).view(-1, self.bottleneck_width, 4, 4)
        return self.upscale(x)  # (B, decoder_widths[0], 8, 8)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(features)


class Encoder(Inter):
    """Stride-2 convs down to 4x4, then its own bottleneck (with LIAE, the one every identity shares)."""

    def __init__(self, cfg: ModelConfig) -> None:
        nn.Module.__init__(self)
        widths = (3, *cfg.encoder_widths)
        k = cfg.encoder_kernel
        # The convolutions first: checkpoints keep Adam's moments by parameter order, so `--resume` of a
        # model saved before this class had a bottleneck of its own depends on it.
        last = len(widths) - 2  # its output is the 4x4 map
        self.convs = nn.ModuleList(
            Conv2d(a, b, k, stride=2, padding=k // 2, small_map=i == last) for i, (a, b) in enumerate(pairwise(widths))
        )
        self._build(cfg)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)  # (B, 3, S, S) -> ... -> (B, C, 4, 4)
        return x.flatten(1)

    def forward(self, x: torch.Tensor, move: "CodeMove | None" = None) -> torch.Tensor:
        return self.bottleneck(self.features(x), move)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The dense code (B, latent): what a `CodeMove` moves."""
        return self.to_latent(self.features(x))


class Decoder(nn.Module):
    """Upscale stages `first` to `last` (all by default), then the RGB (and mask) heads."""

    def __init__(
        self, cfg: ModelConfig, first: int = 0, last: int | None = None, heads: bool = True, wide: int = 1
    ) -> None:
        super().__init__()
        widths = cfg.decoder_widths[first : None if last is None else last + 1]
        widths = (widths[0] * wide, *widths[1:])  # LIAE's decoder takes two codes side by side
        self.upscales = nn.ModuleList(Upscale(a, b) for a, b in pairwise(widths))
        self.residuals = nn.ModuleList(ResidualBlock(b) if cfg.residual else nn.Identity() for b in widths[1:])
        self.to_rgb = nn.Conv2d(widths[-1], 3, 5, padding=2) if heads else None
        self.to_mask = nn.Conv2d(widths[-1], 1, 5, padding=2) if heads and cfg.learn_mask else None

    def upscale(self, x: torch.Tensor) -> torch.Tensor:
        for upscale, residual in zip(self.upscales, self.residuals, strict=True):
            x = residual(upscale(x))  # (B, C, H, W) -> (B, C', 2H, 2W)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.upscale(x)
        if self.to_mask is None or not MERGED_HEADS:
            rgb = torch.sigmoid(self.to_rgb(x))  # (B, 3, S, S)
            mask = torch.sigmoid(self.to_mask(x)) if self.to_mask is not None else None  # (B, 1, S, S)
            return rgb, mask
        # One convolution draws the face and its mask: this thin at full size, a convolution costs what
        # reading its input costs, whatever it outputs (bench/layers.py: 16 -> 1 took as long as 16 -> 3).
        weight = torch.cat([self.to_rgb.weight, self.to_mask.weight])
        bias = torch.cat([self.to_rgb.bias, self.to_mask.bias])
        out = torch.sigmoid(F.conv2d(x, weight, bias, padding=self.to_rgb.padding))
        # Each its own tensor, in the layout the rest runs in: the losses are slower on strided views.
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        return out[:, :3].contiguous(memory_format=layout), out[:, 3:].contiguous(memory_format=layout)


@dataclass
class Output:
    rgb: torch.Tensor  # (B, 3, S, S) in [0, 1]
    mask: torch.Tensor | None = field(default=None)  # (B, 1, S, S) in [0, 1], with learn_mask
    code: torch.Tensor | None = field(default=None)  # (B, C, 8, 8): what the encoder made of the input
    swap: torch.Tensor | None = field(default=None)  # (N, 3, S, S): the first N faces drawn as the next identity
    cycled: torch.Tensor | None = field(default=None)  # the code of `swap`, encoded again


class Autoencoder(nn.Module):
    """`model({"bob": faces})["bob"]` draws the faces as bob, whoever they show: that is a swap.

    Training passes every identity's own faces at once, `model({"alice": a, "bob": b})`: one encoder pass
    over all of them (one larger batch runs faster than two), then each identity's own decoder.
    """

    def __init__(self, cfg: ModelConfig, identities: list[str]) -> None:
        super().__init__()
        if len(identities) < 2 or len(set(identities)) != len(identities):
            raise DualfaceError(f"need two or more distinct identities, got {identities}")
        self.config = cfg
        self.identities = list(identities)
        self.encoder = Encoder(cfg)
        if cfg.liae:
            if cfg.liae not in identities:
                raise DualfaceError(f"--liae {cfg.liae}: not one of the identities ({', '.join(identities)})")
            # DeepFaceLab's LIAE: each face's code is two bottlenecks side by side, [its identity's own, the
            # shared one], and the swap identity's own is the shared one. So a swap ([shared, shared] of
            # another's face) goes only through layers that have seen both people, drawn by one decoder.
            self.inters = nn.ModuleDict({name: Inter(cfg) for name in identities if name != cfg.liae})
            self.decoder = Decoder(cfg, wide=2)
            return
        shared = cfg.shared_upscales
        # The shared trunk, when there is one, is where every identity's mouth and eyes are first drawn:
        # the identity with few faces learns expressions from the one with many (cf. DeepFaceLab's LIAE).
        self.trunk = Decoder(cfg, last=shared, heads=False) if shared else None
        self.decoders = nn.ModuleDict({name: Decoder(cfg, first=shared) for name in identities})

    def forward(
        self, faces: dict[str, torch.Tensor], swap: int = 0, cycle: bool = False, move: "CodeMove | None" = None
    ) -> dict[str, Output]:
        """Each identity's faces through the shared encoder and its own decoder.

        With `swap` N, the first N codes of each identity are also drawn by the next identity's decoder
        (`Output.swap`): the swap itself, for losses that judge it. With `cycle`, that swap is encoded again
        (`Output.cycled`): a swap that keeps the source's expression encodes back to the source's code, an
        "average face" does not. `move` changes every dense code (`recentre`).
        """
        names = list(faces)
        sizes = [len(faces[n]) for n in names]
        batch = torch.cat([faces[n] for n in names])
        if self.config.liae:
            if swap:
                raise DualfaceError("an LIAE model has a single decoder: no swap to draw in training")
            if move is not None:
                raise DualfaceError("an LIAE model's codes are two bottlenecks: there is no one code to shift")
            features = self.encoder.features(batch)
            shared = self.encoder.bottleneck(features).split(sizes)
            codes = []
            for name, own, common in zip(names, features.split(sizes), shared, strict=True):
                codes.append(torch.cat([self.inters[name](own) if name in self.inters else common, common], 1))
            rgb, mask = self.decoder(torch.cat(codes))  # one decoder pass over every identity's faces
            masks = mask.split(sizes) if mask is not None else [None] * len(names)
            drawn = zip(names, rgb.split(sizes), masks, codes, strict=True)
            return {n: Output(rgb, mask, code=code) for n, rgb, mask, code in drawn}
        codes = self.encoder(batch, move)  # (sum B, C, 8, 8)
        if self.trunk is not None:
            codes = self.trunk.upscale(codes)  # (sum B, C', 8 * 2**shared, ...)
        codes_by_name = dict(zip(names, codes.split(sizes), strict=True))
        outputs = {name: Output(*self.decoders[name](code), code=code) for name, code in codes_by_name.items()}
        if swap:
            for i, n in enumerate(names):
                outputs[n].swap = self.decoders[names[(i + 1) % len(names)]](codes_by_name[n][:swap])[0]
        if swap and cycle:
            swaps = [outputs[n].swap for n in names]
            cycled = self.encoder(torch.cat(swaps))
            if self.trunk is not None:
                cycled = self.trunk.upscale(cycled)
            cycled = cycled.split([len(s) for s in swaps])
            for name, again in zip(names, cycled, strict=True):
                outputs[name].cycled = again
        return outputs


@torch.no_grad()
def draw(
    model: Autoencoder,
    crops: np.ndarray,
    identity: str,
    device: str | torch.device = "cpu",
    batch: int = 64,
    dtype: torch.dtype = torch.float32,
    move: "CodeMove | None" = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Model crops drawn as `identity`: the one place a model runs on faces outside training.

    Args:
        crops: (N, S, S, 3) uint8 model inputs.
        dtype: what the model computes in (`precision.pick_dtype`); its weights stay fp32. A model moved to
            channels-last (`precision.wants_channels_last`) runs in that layout from its first layer on.
        move: what is done to every face's dense code before it is drawn (`recentre.CodeMove`).

    Returns:
        (N, S, S, 3) float32 RGB in [0, 1], and the (N, S, S) learned masks when the model has a mask head.
    """
    rgb, masks = [], []
    device_type = torch.device(device).type
    for i in range(0, len(crops), batch):
        x = as_input(crops[i : i + batch], device)
        with torch.autocast(device_type, dtype=dtype, enabled=dtype != torch.float32):
            out = model({identity: x}, move=move)[identity]
        rgb.append(out.rgb.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())
        if out.mask is not None:
            masks.append(out.mask[:, 0].float().cpu().numpy())
    size = model.config.size
    if not rgb:
        return np.zeros((0, size, size, 3), np.float32), None
    return np.concatenate(rgb), np.concatenate(masks) if masks else None


def as_input(crops: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """(N, S, S, 3) uint8 crops -> the (N, 3, S, S) float input in [0, 1] on `device`."""
    # np.array copies: crops may be a read-only view, which torch warns of
    return torch.from_numpy(np.array(crops)).to(device).permute(0, 3, 1, 2).float() / 255


def as_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8."""
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def train_flops_per_example(cfg: ModelConfig) -> float:
    """FLOPs to train on one face (forward through the encoder and one decoder, and backward), counted
    by torch's FlopCounterMode on a real forward/backward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    model = Autoencoder(replace(cfg, liae="b" if cfg.liae else ""), ["a", "b"])  # "a": LIAE's costlier path
    faces = torch.rand(2, 3, cfg.size, cfg.size)
    with FlopCounterMode(display=False) as counter:
        out = model({"a": faces})["a"]
        out.rgb.mean().backward()
    return counter.get_total_flops() / 2
