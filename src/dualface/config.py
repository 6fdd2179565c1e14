"""The settings of every stage, each option declared once (`options.option`: default, help, bounds, choices).

The command line (`cli.py`) is built from these fields, the UI reads flag names and defaults from them, and
each config checks its values when it is made, so every caller meets the same rules. Choices are the keys of
the tables they name (presets, losses, masks, colour transfers, blends, detectors), read when needed: a new
table entry is a new choice everywhere. Nothing here imports torch: `--help`, `verify` and `ui` start fast.
"""

import contextlib
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dualface.errors import DualfaceError
from dualface.options import check, option
from dualface.presets import DEFAULT_PRESET, MODEL_PRESETS, preset_batch, preset_lr

SAME_PERSON = 0.6  # dlib's embedding distance below which two faces are the same person (its documented 0.6)
TRAIN_MAX_BATCH = 512  # per identity: 512 faces of the classic 64 px model already take GBs of activations
CONVERT_MAX_BATCH = 256  # frames held in memory at once: 256 decoded 1080p frames are already 1.6 GB


def keys_of(module: str, table: str) -> Callable[[], Iterable[str]]:
    """A table's keys, imported when first asked for (the tables' modules import this one)."""
    return lambda: list(getattr(importlib.import_module(module), table))


def parse_duration(text: str) -> float:
    """'90s', '20m', '1h30m', '1.5h' or plain seconds -> seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms]?)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s", "", text.lower()):
        raise DualfaceError(f"cannot read duration {text!r}: use e.g. 90s, 20m, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "": 1}[u] for n, u in parts)


def named_folders(items: Iterable[str] | dict, flag: str = "--held-out") -> dict[str, Path]:
    """IDENTITY=FOLDER items (repeatable options) -> {identity: folder}."""
    if isinstance(items, dict):
        return {str(k): Path(v) for k, v in items.items()}
    pairs = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name:
            raise DualfaceError(f"{flag} {item!r}: write it as IDENTITY=FOLDER")
        pairs[name] = Path(folder)
    return pairs


PROGRESS = "Show a progress bar."
# Set to "1": progress bars even where stderr is no terminal (the web UI's jobs: it reads them from their logs)
PROGRESS_ENV = "DUALFACE_PROGRESS"


def precision_option() -> Any:
    """`--precision`, the same for training and conversion (`precision.pick_dtype`)."""
    return option(
        "auto", choices=lambda: ["auto", "fp32", "bf16"], help="auto (bf16 where the hardware has it), fp32 or bf16."
    )


# ---------------------------------------------------------------------------------------------------------
# extract


# How extraction cuts faces, recorded in every face and in the alignments file's settings: "lanczos" is
# `align.cut` since 2026-12-06 (a Lanczos filter where the face shrinks into its crop); "area" was its
# bilinear warp and box average, which blurred such faces (bench/cut.py); faces without a record may come
# from the plain warp of dualface before 2026-11-24, which aliased them.
CUT = "lanczos"


@dataclass
class ExtractConfig:
    """Settings of `dualface extract`."""

    inputs: list[Path] = option(argument=True, help="Videos, images, or folders of them.")
    output: Path = option(short="-o", help="Folder for the face PNGs and alignments files.")
    size: int = option(256, low=16, high=2048, help="Side of the aligned face crops, in pixels.")
    coverage: float = option(0.6, low=0.2, high=1.0, help="Share of the crop's width the face spans (0.8: tight).")
    centering: str = option(
        "face",
        choices=keys_of("dualface.align", "CENTERS"),
        help="'face' (brows to chin) or 'head' (the forehead too).",
    )
    detector: str = option(
        "hog", choices=keys_of("dualface.detect", "DETECTORS"), help="'hog' (fast) or 'cnn' (slower, finds more)."
    )
    detect_every: int = option(5, low=1, help="Frames between detections while faces are tracked.")
    detect_size: int = option(640, low=80, help="Longest side of the frame the detector scans.")
    every: int = option(1, low=1, help="Process every Nth frame of a video.")
    min_size: int = option(0, low=0, help="Ignore faces smaller than this many source pixels.")
    smooth: bool = option(True, help="Smooth landmarks over time in videos (never for stills).")
    references: list[Path] = option(
        factory=list, flag="--reference", short="-r", help="Photo of the person to keep (repeatable); others skipped."
    )
    threshold: float = option(SAME_PERSON, above=0, help="Largest embedding distance to a reference kept.")
    embed_every: int = option(100, low=1, help="Frames between identity embeddings of a face (each ~0.13 s).")
    overwrite: bool = option(
        False, help="Extract again inputs already extracted into OUTPUT, even with other settings."
    )
    progress: bool = option(True, help=PROGRESS)

    def __post_init__(self) -> None:
        self.inputs = [Path(p) for p in self.inputs]
        self.output = Path(self.output)
        self.references = [Path(p) for p in self.references]
        if not self.inputs:
            raise DualfaceError("give at least one video, image or folder to extract from")
        check(self)

    def settings(self) -> dict[str, Any]:
        """What shapes the faces: an input extracted with other settings is not resumed or skipped."""
        keys = ("size", "coverage", "centering", "detector", "detect_every", "detect_size", "every", "min_size")
        settings = {k: getattr(self, k) for k in (*keys, "smooth", "threshold", "embed_every")}
        settings["cut"] = CUT  # faces cut otherwise (an older dualface's aliased or blurred cut) are extracted again
        settings["references"] = sorted(str(p.resolve()) for p in self.references)
        return settings


# ---------------------------------------------------------------------------------------------------------
# train


@dataclass
class AugmentConfig:
    """Training augmentation and the loss's weights (`augment.py`)."""

    rotation: float = option(10.0, low=0, cli=False, help="Degrees, uniform +-.")
    zoom: float = option(0.05, low=0, cli=False, help="Scale change, uniform +-.")
    shift: float = option(0.05, low=0, cli=False, help="Share of the side, uniform +-.")
    flip: float = option(0.5, low=0, high=1, cli=False, help="Probability of a horizontal flip.")
    # Random-warp noise, share of the side (std of the coarse grid's offsets): 0.02 is the classic deepfakes
    # value (5 px at 256). Twice that jitters a 64 px mouth by as much as it opens (2-4 px), and the
    # decoder learns to draw an average mouth.
    warp: float = option(0.02, low=0, cli=False, help="Random-warp noise, share of the side.")
    lightness: float = option(0.1, low=0, cli=False, help="Lab L scale, uniform +-.")
    color: float = option(6.0, low=0, cli=False, help="Lab a/b shift, uniform +- (of 255).")
    mask: str = option(
        "extended", choices=keys_of("dualface.masks", "MASKS"), help="Loss mask from the landmarks: hull or extended."
    )
    recolor: str = option(
        "none",
        choices=keys_of("dualface.color", "COLOR_TRANSFERS"),
        help="Recolour half the faces to another identity's (a colour transfer, as for convert; none: off).",
    )
    # A new recording lights and colours the same person differently, and an encoder that has seen three
    # recordings of them hands the decoder codes it never learned (bench/mouth.py: Obama's training faces'
    # mouths cross into s1 at 0.71, a new recording's at 0.44). Recoloured inputs with their own colours as
    # the target ask for a code that does not carry the light.
    input_recolor: float = option(
        0.0,
        low=0,
        high=1,
        help="Share of faces whose input alone is recoloured to a random face of any identity (the target "
        "keeps its colours; transfer: --recolor's, else rct; 0: off).",
    )
    eye_weight: float = option(2.0, low=0, help="Loss weight on the eyes.")
    mouth_weight: float = option(3.0, low=0, help="Loss weight on the mouth.")
    # Talking-head footage is mostly closed mouths and frontal faces; drawn uniformly, the rare open mouth
    # is a few percent of the steps and the decoder learns an average, half-closed one.
    balance: float = option(
        0.0, low=0, high=1, help="Draw rare mouth openings and head turns more often: 0 uniform, 1 every bin alike."
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass
class TrainConfig:
    """Settings of `dualface train`."""

    faces: list[Path] = option(
        argument=True, help="Two or more face folders from `dualface extract`, one per identity."
    )
    model_dir: Path = option(flag="--model", short="-m", help="Folder for checkpoints, previews and logs.")
    names: list[str] = option(
        factory=list, flag="--name", help="Identity names, one per face folder (default: folders')."
    )
    preset: str | None = option(
        None,
        choices=lambda: list(MODEL_PRESETS),
        help=f"Model preset (presets.py; default: the checkpoint's with --resume or --init, else {DEFAULT_PRESET}).",
    )
    shared_upscales: int | None = option(
        None, low=0, help="Decoder upscales shared by all identities (default: the preset's; 0: separate decoders)."
    )
    # A tighter crop puts more of the model's pixels on the face (S x coverage across it, jaw to jaw) at the
    # same cost, at the price of the forehead: 0.9 is about DeepFaceLab's full face (bench/resolution.py).
    coverage: float | None = option(
        None, low=0.2, high=1.0, help="Share of the model's crop the face spans, jaw to jaw (default: the preset's)."
    )
    liae: str | None = option(
        None,
        help="DeepFaceLab's LIAE: one decoder, and every other identity is swapped into NAME (a model per direction).",
    )
    batch_size: int | None = option(
        None,
        low=1,
        high=TRAIN_MAX_BATCH,
        help="Faces per identity per step (default: the preset's, or on --resume the run's own; per torchrun "
        "process; --processes splits it).",
    )
    lr: float | None = option(
        None, above=0, help="Adam learning rate (default: the preset's, or on --resume the run's own)."
    )
    warmup: int = option(100, low=0, help="Steps of learning-rate warmup.")
    # Annealing: a constant rate leaves the weights jittering around the minimum at the rate's scale; a
    # run with a known end can settle into it over its last stretch.
    decay: float = option(
        0.0,
        low=0,
        high=1,
        help="Share of the run (by --time, --iterations or --epochs) over which the "
        "learning rate falls to a tenth (0: constant).",
    )
    # The random warp teaches a decoder to draw a face from a code, but it also leaves the target's fine
    # detail a pixel or two from where the input put it, which the decoder hedges against with a blur.
    # DeepFaceLab and faceswap switch it off for training's last stretch.
    warp_off: float = option(
        0.0,
        low=0,
        high=1,
        help="Share of the run (by --time, --iterations or --epochs), at its end, trained without the random "
        "warp, for detail (1: all of it, as faceswap's --no-warp on a resumed model; 0: never).",
    )
    clip: float = option(1.0, above=0, cli=False, help="Gradient norm clip.")
    loss: str = option("ssim_l1", choices=keys_of("dualface.losses", "LOSSES"), help="Reconstruction loss.")
    mask_loss_weight: float = option(1.0, low=0, cli=False, help="With a learned mask: weight of its L1 loss.")
    cycle_weight: float = option(
        0.0,
        low=0,
        help="Weight of a latent cycle loss: each identity's faces drawn as the next identity, encoded again, "
        "should give back their own code (the expression carried across; 0: off).",
    )
    expression_weight: float = option(
        0.0,
        low=0,
        help="Weight of an expression judge's loss: each identity's faces drawn as the next identity should "
        "open mouth and eyes as their source does, read by a judge trained on real faces (expression.py; "
        "it starts with --gan-after; 0: off).",
    )
    swap_faces: int = option(
        4, low=1, help="With --cycle-weight or --expression-weight: faces of each identity swapped a step (cost)."
    )
    gan_power: float = option(
        0.0, low=0, help="Weight of a patch critic's loss, for sharper faces (0: off; try 0.03, gan.py)."
    )
    gan_after: int = option(1000, low=0, help="Steps of reconstruction alone before the critic starts.")
    code_power: float = option(
        0.0,
        low=0,
        help="Weight of a code critic's loss, so every identity's codes look alike and each decoder draws "
        "the others' (DeepFaceLab's true face power; 0: off; 0.01 and 0.1 measured no gain, docs/quality.md; gan.py).",
    )
    learn_mask: bool | None = option(
        None, help="Decoders also draw the face's mask, used when pasting (default: the preset's)."
    )
    background_weight: float = option(0.1, low=0, cli=False, help="Loss weight outside the face mask.")
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    precision: str = precision_option()
    channels_last: bool | None = option(None, cli=False, help="Default: on CUDA and AVX-512 CPUs (slower on AVX2).")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N.")
    iterations: int | None = option(None, low=1, help="Stop after this many steps.")
    epochs: float | None = option(None, above=0, help="Stop after this many passes over the largest face set.")
    target_loss: float | None = option(None, above=0, help="Stop when every identity's smoothed loss is below this.")
    time_limit: float | None = option(
        None,
        flag="--time",
        above=0,
        parse=parse_duration,
        cli_type=str | None,
        help="Stop after this long: 20m, 1h30m.",
    )
    save_every: int = option(500, low=1, help="Steps between checkpoints.")
    preview_every: int = option(100, low=1, help="Steps between preview grids.")
    keep: int = option(3, low=1, help="Checkpoints kept besides the best.")
    resume: bool = option(False, help="Continue the model in --model.")
    eval_every: int = option(0, low=0, help="Steps between identity/reconstruction figures on held-out faces.")
    eval_faces: int = option(64, low=1, help="At most this many held-out faces measured per identity.")
    held_out: dict[str, Path] = option(
        factory=dict,
        parse=named_folders,
        cli_type=list[str],
        help="IDENTITY=FOLDER of faces from clips not trained on, for --eval-every (default: an identity's last "
        "whole clips). Repeatable.",
    )
    best_by: str = option(
        "loss", help="What best.safetensors is best at: loss, or a held-out figure such as 'a->b/mouth'."
    )
    freeze: tuple[str, ...] = option(
        factory=tuple,
        parse=tuple,
        cli_type=list[str],
        help="Leave this part untrained (encoder, trunk, decoders; LIAE: encoder, inters, decoder).",
    )
    init: Path | None = option(
        None, help="Start from these weights (a checkpoint, or a model folder's best) instead of random ones."
    )
    init_decoders: bool = option(
        True,
        help="With --init, the decoders start from it too; off: only the encoder and the shared trunk (faceswap's "
        "--load-weights; LIAE: the encoder and its shared bottleneck), for a base model whose decoders draw anyone.",
    )
    # The last step's weights swing from step to step, their average does not.
    average: float = option(
        0.995, low=0, below=1, help="Decay of the weights' moving average used for previews and conversion (0: off)."
    )
    seed: int = option(0, low=0, high=2**32 - 1, help="Random seed.")
    max_faces: int | None = option(None, low=1, help="Use at most this many faces per identity.")
    timelapse: bool = option(False, help="Keep every preview, for a timelapse.")
    tensorboard: bool = option(True, cli=False, help="Also log to TensorBoard where it is installed.")
    threads: int = option(
        0,
        low=0,
        high=1024,
        help="CPU threads (0: every core when idle; beside a busy process, one lane of the batch per core, "
        "re-measured while training).",
    )
    processes: int = option(
        1,
        low=1,
        high=1024,
        help="Train as this many single-threaded processes, data-parallel, the batch split between them: on a CPU "
        "another busy job shares, one per core keeps the most speed (README, CPU threads).",
    )
    progress: bool = option(True, help=PROGRESS)

    def __post_init__(self) -> None:
        self.faces = [Path(p) for p in self.faces]
        self.model_dir = Path(self.model_dir)
        self.held_out = named_folders(self.held_out)
        self.freeze = tuple(self.freeze)
        if len(self.faces) < 2:
            raise DualfaceError("give two or more face folders, one per identity")
        if self.decay and self.time_limit is None and self.iterations is None and self.epochs is None:
            raise DualfaceError("--decay needs an end to decay towards: --time, --iterations or --epochs")
        if 0 < self.warp_off < 1 and self.time_limit is None and self.iterations is None and self.epochs is None:
            raise DualfaceError("--warp-off needs an end to count its share from: --time, --iterations or --epochs")
        if self.held_out and not self.eval_every:
            raise DualfaceError("--held-out needs --eval-every (how often the held-out faces are measured)")
        if self.best_by != "loss" and not self.eval_every:
            raise DualfaceError(f"--best-by {self.best_by} needs --eval-every (the held-out figures it is chosen by)")
        if not self.names:
            self.names = [p.name for p in self.faces]
        if len(self.names) != len(self.faces) or len(set(self.names)) != len(self.names):
            raise DualfaceError(f"need one distinct name per face folder, got {self.names}")
        for name in self.names:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise DualfaceError(f"identity name {name!r} may use only letters, digits, '_' and '-'")
        unknown = [name for name in self.held_out if name not in self.names]
        if unknown:
            raise DualfaceError(f"--held-out {unknown[0]}=...: not an identity here ({', '.join(self.names)})")
        check(self)
        self.preset = self.preset or recorded_preset(self) or DEFAULT_PRESET
        if not self.resume:  # a resumed run's come from its checkpoint (`runstate.settled`)
            self.lr = preset_lr(self.preset) if self.lr is None else self.lr
            self.batch_size = preset_batch(self.preset) if self.batch_size is None else self.batch_size


def recorded_preset(cfg: TrainConfig) -> str | None:
    """The preset of the checkpoint a run continues (--resume) or starts from (--init): a model's shape is
    its checkpoint's, so its preset, with the rate and batch that go with it, is too. None where there is
    none to read (the run itself then says why, in its own words)."""
    from dualface.checkpoint import read_meta
    from dualface.runstate import init_file, newest_meta

    with contextlib.suppress(DualfaceError, OSError, KeyError, TypeError):
        if cfg.resume:
            return newest_meta(cfg.model_dir)["model_config"]["preset"]
        if cfg.init:
            return read_meta(init_file(cfg.init))["model_config"]["preset"]
    return None


# ---------------------------------------------------------------------------------------------------------
# convert

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass
class PasteConfig:
    """How a drawn face goes back into its frame (`composite.py`): used by convert, and by evaluate's
    static-swap floor with the settings the conversion recorded."""

    mask: str = option(
        "auto",
        choices=lambda: ["auto", *keys_of("dualface.masks", "MASKS")(), "learned"],
        help="Blend mask: hull, extended, learned (the model's mask head), or auto: the extended hull cut to "
        "where the model's mask says face, where it has a mask head (else extended).",
    )
    # A target whose hair falls over the forehead or temples has it drawn there, and pasted it reads as dark
    # streaks on the source's face (the demo's brbk7n): DeepFaceLab's users mask it out by hand (XSeg).
    hair: bool = option(
        True, help="Leave out of the mask what the drawn face shows far darker than its skin above the nose (hair)."
    )
    erode: float = option(0.0, above=-50, below=50, help="Shrink the mask by this % of the face crop (negative grows).")
    feather: float = option(5.0, low=0, below=50, help="Soft edge of the mask, % of the face crop.")
    # rct, not avg: a mean shift in RGB takes a pale face to a dark one by subtracting, which clips the
    # shadows (eye sockets, nostrils) in some channels and tints them (purple eyes, Obama -> s1); scaling
    # in Lab keeps them dark. DeepFaceLab's default too.
    color: str = option("rct", choices=keys_of("dualface.color", "COLOR_TRANSFERS"), help="Colour transfer.")
    blend: str = option("alpha", choices=keys_of("dualface.composite", "BLENDS"), help="How the face is blended in.")
    # DeepFaceLab's blursharpen and faceswap's sharpen: a decoder trained for an hour draws the face's edges
    # softer than the camera did, and an unsharp mask restores their contrast (not the detail never drawn).
    sharpen: float = option(
        0.0, low=0, high=4, help="Unsharp-mask the drawn face by this amount before pasting (0: off; 1: edges x2)."
    )
    smooth: bool = option(True, help="Smooth placement, mask and colour over frames.")
    smooth_weight: float = option(
        0.5, above=0, high=1, cli=False, help="Share of the current frame in the running mask and colour averages."
    )

    def __post_init__(self) -> None:
        check(self)

    @classmethod
    def of(cls, settings: Any) -> "PasteConfig":
        """The paste settings of a dict or object that has them (a recorded conversion's tags)."""
        get = settings.get if isinstance(settings, dict) else lambda k, d: getattr(settings, k, d)
        return cls(**{f.name: get(f.name, f.default) for f in fields(cls)})


@dataclass
class ConvertConfig:
    """Settings of `dualface convert`."""

    input: Path = option(argument=True, help="A video, an image, or a folder of images.")
    model: Path = option(short="-m", help="The model folder `dualface train` wrote.")
    output: Path = option(short="-o", help="Output video (.mp4, .mov, .mkv), image, or folder.")
    to: str = option(help="The identity to draw the faces as.")
    checkpoint: str = option("best", help="best, last, or a checkpoint file.")
    from_identity: str | None = option(None, flag="--from", help="Swap only faces of this identity (by embedding).")
    alignments: Path | None = option(None, help="Reuse this alignments file from `dualface extract`.")
    recentre: bool = option(
        True,
        help="Move the input's mean face code onto the codes the model trained on (its mean pose kept): a "
        "recording the model never saw then draws about as expressively as the faces it trained on.",
    )
    toward_target: float = option(
        0.5,
        low=0,
        high=1,
        help="How far recentring also moves the codes from the source person's mean to the target's: further "
        "draws more of the target's face shape, and a mouth that follows more, at a cost in landmark agreement.",
    )
    match_mouth: bool = option(
        True,
        help="With recentring, stretch the codes along the mouth direction so the target's mouth opens as far, "
        "in its own faces' terms, as the input's does (a recording the model never saw encodes its mouth "
        "movements smaller than the training faces').",
    )
    morph: float = option(
        0.0,
        low=0,
        high=1,
        help="Warp the drawn face this far from the target's proportions toward the input face's (brows, eyes, "
        "lips where the input has them): the face follows the input's landmarks more, at a cost in likeness.",
    )
    paste: PasteConfig = field(default_factory=PasteConfig)
    crf: int = option(18, low=0, high=51, help="H.264 quality: 0 lossless, 18 visually clean, 28 small.")
    x264_preset: str = option(
        "veryfast",
        choices=lambda: X264_PRESETS,
        help="x264 speed preset (ultrafast ... veryslow).",
    )
    batch: int = option(8, low=1, high=CONVERT_MAX_BATCH, help="Frames whose faces go through the model together.")
    threshold: float = option(SAME_PERSON, above=0, cli=False, help="Largest embedding distance that is --from.")
    detector: str = option("hog", choices=keys_of("dualface.detect", "DETECTORS"), cli=False, help="Face detector.")
    detect_every: int = option(5, low=1, help="Frames between detections while tracking.")
    detect_size: int = option(640, low=80, cli=False, help="Longest side of the frame the detector scans.")
    watermark: bool = option(True, help="Mark every frame as synthetic (invisible watermark).")
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto (the GPU where there is one).")
    precision: str = precision_option()
    progress: bool = option(True, help=PROGRESS)

    def __post_init__(self) -> None:
        self.input, self.model, self.output = Path(self.input), Path(self.model), Path(self.output)
        self.alignments = Path(self.alignments) if self.alignments else None
        check(self)


# ---------------------------------------------------------------------------------------------------------
# evaluate


def default_report_folder(output: Path) -> Path:
    """Where `evaluate` writes the report of a conversion when not told: beside it."""
    return output.with_name(output.stem + "-report")


@dataclass
class EvaluateConfig:
    """Settings of `dualface evaluate`."""

    source: Path = option(argument=True, help="The original video.")
    output: Path = option(argument=True, help="Its conversion by `dualface convert`.")
    model: Path = option(short="-m", help="The model that converted it.")
    to: str = option(help="The identity swapped in.")
    from_identity: str | None = option(None, flag="--from", help="The identity in the source (default: the other).")
    held_out: dict[str, Path] = option(
        factory=dict,
        parse=named_folders,
        cli_type=list[str],
        help="IDENTITY=FOLDER of faces not used in training: reconstruction SSIM/PSNR. Repeatable.",
    )
    report: Path | None = option(None, short="-o", help="Report folder (default: beside the output).")
    embed_frames: int = option(100, low=1, help="At most this many frames get an identity embedding (0.13 s each).")
    checkpoint: str | None = option(
        None, help="best, last, or a checkpoint file (default: the one the conversion used)."
    )
    target_faces: Path | None = option(
        None, help="Real faces of the target, for sharpness and the identity gap (default: its training faces)."
    )
    real_faces: bool = option(
        True,
        help="Also paste the target's own nearest real faces (of --target-faces) the same way, and score them: "
        "which bars a perfect decoder pasted this way would clear.",
    )
    progress: bool = option(True, help=PROGRESS)

    def __post_init__(self) -> None:
        self.held_out = named_folders(self.held_out)
        check(self)

    @property
    def report_folder(self) -> Path:
        return Path(self.report) if self.report else default_report_folder(Path(self.output))


# ---------------------------------------------------------------------------------------------------------
# demo

ROOT = Path(__file__).resolve().parents[2]  # the repository, where the demo's footage and starter live


@dataclass
class DemoConfig:
    """Settings of `dualface demo`."""

    output: Path = option(Path("demo-output"), short="-o", help="Folder for everything the demo writes.")
    data: Path = option(ROOT / "data", help="The bundled footage (the repository's data/ folder).")
    starter: Path = option(
        ROOT / "models" / "starter-lite128-grid.safetensors", help="The starter weights (the repository's models/)."
    )
    from_scratch: bool = option(False, help="Train from random weights instead of the starter (slower).")
    iterations: int = option(400, low=1, help="Training steps.")
    eval_every: int = option(50, low=1, cli=False, help="Steps between the held-out measurements that pick the step.")
    progress: bool = option(True, help=PROGRESS)

    def __post_init__(self) -> None:
        check(self)


STAGES = {
    "extract": ExtractConfig,
    "train": TrainConfig,
    "convert": ConvertConfig,
    "evaluate": EvaluateConfig,
    "demo": DemoConfig,
}
