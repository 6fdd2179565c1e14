"""The model presets: each one entry, its shape (`model.ModelConfig` fields) and how it trains by default
(TRAINING: "lr", the Adam learning rate, and "batch", faces per identity per step). A new preset is one entry
here: the CLI's choices, the UI's list and training's default learning rate and batch all read this table.
Nothing here imports torch, so the option layer can list it.
"""

from typing import Any

# Each preset: the model's shape, and "lr" and "batch", the learning rate and batch it trains at by default.
DEFAULT_PRESET = "lite"  # a new model's, where neither --preset nor a checkpoint it continues names one
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # The classic recipe's 5e-5 and batch 16 for the classic-sized models.
    "original": {"lr": 5e-5, "batch": 16},
    # 1/8 of original's FLOPs: 3x3 encoder convs, a quarter of the widths, most of the budget left to the
    # decoders' upscales, where the face is drawn. The first decoder upscale is shared by the identities:
    # measured on GRID, that is what made swaps follow the source's mouth within minutes (time_to_swap.json).
    # It trains stably at 4x the classic learning rate, which is most of its time to a swap.
    "lite": {
        "lr": 2e-4,
        "batch": 16,
        "shared_upscales": 1,
        "encoder_kernel": 3,
        "encoder_widths": (32, 64, 128, 256),
        "latent": 256,
        "bottleneck_width": 256,
        "decoder_widths": (192, 96, 64, 32),
    },
    # lite drawn at 128 px: one more stride-2 conv in and one more upscale out, both thin (16 channels at
    # full size), so a face pasted at 100-250 px on screen is upscaled 2x less. 1.4x lite's FLOPs.
    "lite128": {
        "lr": 2e-4,
        # This early in training the model learns by its updates more than by the faces each averages, so
        # small steps win even where a step's fixed costs make each face dearer (at 4 a face costs a fifth
        # more than at 16 on a 2-core fp32 Xeon, 2.3x on a bf16 EPYC): the hour at 4 held 3.4-3.7x the
        # steps of 16 on the Xeon, 1.7x on the EPYC, and drew sharper swaps, a smaller gap into s1 and
        # blinks on both (quality_..._batch4, docs/quality.md "Half the batch, twice the steps").
        "batch": 4,
        "size": 128,
        "shared_upscales": 1,
        "encoder_kernel": 3,
        "encoder_widths": (16, 32, 64, 128, 256),
        "latent": 256,
        "bottleneck_width": 256,
        "decoder_widths": (192, 96, 64, 32, 16),
        # The decoders also draw where their face is: pasting keeps only that part of the source's outline,
        # so a target with a narrower face does not bring its backdrop along (quality_lite128_gan_mask_60m).
        "learn_mask": True,
        # The face spans 0.9 of the crop, brows to chin (DeepFaceLab's "full face"), not 0.75: its 128 px
        # draw it as finely as 154 px would at 0.75, for the same cost. Measured over the hour, both
        # directions sharper (0.55x / 0.42x against 0.41x / 0.34x), the identity gap 0.1 wider
        # (quality_lite128_gan_recolor_cubic_areafaces_warpoff06_cov09_60m; bench/resolution.py).
        "coverage": 0.9,
    },
    "hd": {
        "lr": 5e-5,
        "batch": 16,
        "size": 128,
        "encoder_kernel": 5,
        "encoder_widths": (64, 128, 256, 512, 1024),
        "latent": 1024,
        "bottleneck_width": 1024,
        "decoder_widths": (512, 384, 256, 128, 64),
        "residual": True,
        "learn_mask": True,
    },
}


TRAINING = ("lr", "batch")  # a preset's keys that are not the model's shape


def preset_lr(name: str) -> float:
    """The learning rate a preset trains at by default."""
    return MODEL_PRESETS[name]["lr"]


def preset_batch(name: str) -> int:
    """The faces per identity per step a preset trains on by default."""
    return MODEL_PRESETS[name]["batch"]
