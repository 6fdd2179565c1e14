"""`dualface demo`: the whole workflow on the footage bundled in the repository, in minutes, on a CPU.

Extract GRID speaker s1 (five clips) and brbk7n (one clip); train the `lite128` model with the best hour's
recipe (a light patch critic, recoloured faces, the random warp off; README "Time to a usable swap"),
starting from the starter weights in models/ (trained by the project with that recipe: models/README.md
says how, on what, for how long) and keeping the checkpoint whose swaps of a held-out s1 clip follow the
mouth best; convert an s1 clip that neither this training nor the starter's saw into brbk7n; evaluate the
result. Everything lands in one folder: the swapped video, a side-by-side video, the preview grid, the loss
curve and the evaluation report.
"""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dualface.checkpoint import load_checkpoint, resolve_checkpoint
from dualface.config import AugmentConfig, ConvertConfig, DemoConfig, EvaluateConfig, ExtractConfig, TrainConfig
from dualface.convert import convert
from dualface.errors import DualfaceError
from dualface.evaluate import evaluate
from dualface.extract import extract
from dualface.files import FolderLock, ensure_writable_dir, write_output
from dualface.metrics import VideoEvaluation
from dualface.prefetch import prefetch
from dualface.train import train
from dualface.video import probe_video, read_video
from dualface.writer import video_writer

SOURCE, TARGET = "s1", "brbk7n"
MARKER = ".dualface-demo"  # in each model folder the demo makes: the only folders it ever deletes
# The best hour's recipe (bench/results/quality.json): lite128, its learned mask, a critic at 0.03 once the
# reconstruction has settled, half the faces recoloured to the other identity's, and the random warp off
# for the run's last stretch. The starter was trained past the critic's start and under the warp, so from
# it the critic is on at once and every step is unwarped (faceswap's --no-warp on a resumed model).
PRESET, GAN_POWER, GAN_AFTER, RECOLOR, WARP_OFF = "lite128", 0.03, 800, "rct", 0.6


@dataclass
class DemoResult:
    evaluation: VideoEvaluation
    files: dict[str, Path]  # what the demo wrote, by what it is
    seconds: float


def _clips(cfg: DemoConfig) -> dict[str, list[Path]]:
    grid = Path(cfg.data) / "grid"
    clips = {
        SOURCE: sorted((grid / "s1").glob("*.mpg")),
        TARGET: [grid / "speakers" / f"{TARGET}.mpg"],
        "held-out": sorted((grid / "s1-held-out").glob("*.mpg")),
    }
    missing = [name for name, paths in clips.items() if not paths or not all(p.exists() for p in paths)]
    if missing:
        raise DualfaceError(f"{cfg.data}: bundled footage not found; run from a clone of the repository or pass --data")
    return clips


def side_by_side(source: Path, swapped: Path, output: Path) -> None:
    """Source and swap next to each other, with the source's sound, labelled and watermarked as synthetic."""
    info = probe_video(source)
    size = (2 * info.width, info.height)
    with video_writer(output, source, kind="face swap, source left", size=size) as write:
        for (_, left), (_, right) in zip(prefetch(read_video(source)), prefetch(read_video(swapped)), strict=False):
            write(np.hstack([left, right]))


def run_demo(cfg: DemoConfig, log=print) -> DemoResult:
    """The whole workflow into `cfg.output`, held for this run alone: a second demo into the same folder
    is refused, not let loose on the model the first is training."""
    out = ensure_writable_dir(Path(cfg.output))
    with FolderLock(out, "demo"):
        return _run(cfg, out, log)


def _run(cfg: DemoConfig, out: Path, log) -> DemoResult:
    start = time.perf_counter()
    clips = _clips(cfg)
    # The cheap checks before any work: a bad --starter or a foreign folder, said after minutes of extraction,
    # is a wasted run. The model is trained into a folder of its own and takes the earlier run's place only
    # once trained, so a failed or stopped training leaves the earlier model as it was.
    model, fresh, earlier = out / "model", out / "model.training", out / "model.earlier"
    starter = None if cfg.from_scratch else Path(cfg.starter)
    if starter is not None:
        if not starter.is_file():
            raise DualfaceError(f"{starter}: starter weights not found (pass --from-scratch to train without them)")
        shape = load_checkpoint(starter).meta["model_config"]  # a file that holds no model is named now
        if shape["preset"] != PRESET:  # the demo's recipe (rate, batch, critic) is lite128's
            raise DualfaceError(f"{starter}: a '{shape['preset']}' model; the demo trains {PRESET}")
    for folder in (model, fresh, earlier):
        if folder.exists() and not (folder / MARKER).exists():  # never delete what the demo did not make
            raise DualfaceError(f"{folder} exists and was not made by the demo; choose another --output")
    if earlier.exists() and model.exists():  # a run killed as it swapped the two in
        shutil.rmtree(earlier)
    elif earlier.exists():
        earlier.rename(model)
    faces = {}
    for name, paths in clips.items():
        log(f"[1/4] extracting {name} from {', '.join(p.name for p in paths)}")
        summary = extract(ExtractConfig(inputs=paths, output=out / "faces" / name, progress=cfg.progress))
        if summary.errors:
            raise DualfaceError(summary.errors[0])
        faces[name] = out / "faces" / name

    how = f"from the starter weights {starter.name}" if starter else "from random weights"
    log(f"[2/4] training {PRESET} for {cfg.iterations} steps {how}")
    if fresh.exists():  # a failed or interrupted run's: a demo run trains its model afresh
        shutil.rmtree(fresh)
    fresh.mkdir(parents=True)
    (fresh / MARKER).touch()
    trained = train(
        TrainConfig(
            faces=[faces[SOURCE], faces[TARGET]],
            model_dir=fresh,
            preset=PRESET,
            init=starter,
            gan_power=GAN_POWER,
            gan_after=0 if starter else GAN_AFTER,
            augment=AugmentConfig(recolor=RECOLOR),
            warp_off=1.0 if starter else WARP_OFF,
            iterations=cfg.iterations,
            save_every=cfg.iterations,
            preview_every=100,
            # Whether the target's decoder follows the source's mouth swings from checkpoint to checkpoint
            # with only 75 target faces: s1's last training clip is held out whole (the clip converted
            # below is another one) and the checkpoint whose swaps of it follow the mouth best is kept.
            eval_every=cfg.eval_every,
            eval_faces=75,
            best_by=f"{SOURCE}->{TARGET}/mouth",
            progress=cfg.progress,
            tensorboard=False,
        )
    )
    if trained.stopped_by == "interrupted":  # train saved and stopped on Ctrl-C: the demo stops too
        raise KeyboardInterrupt
    if model.exists():  # two renames, so that no moment leaves no model at all
        model.rename(earlier)
    fresh.rename(model)
    if earlier.exists():
        shutil.rmtree(earlier)
    chosen = resolve_checkpoint(model, "best")
    best = load_checkpoint(chosen)
    held = best.meta.get("best_score")
    log(
        f"      {trained.step} steps in {trained.seconds:.0f} s ({trained.examples_per_second:.1f} EGs/s); using "
        f"{chosen.name} (step {best.step}, held-out mouth {'undefined' if held is None else f'{held:.2f}'})"
    )

    clip = clips["held-out"][0]
    swap = out / "swap.mp4"
    log(f"[3/4] converting held-out clip {clip.name} into {TARGET}")
    alignments = faces["held-out"] / f"{clip.stem}.alignments.json"
    convert(
        ConvertConfig(clip, model, swap, TARGET, checkpoint=str(chosen), alignments=alignments, progress=cfg.progress)
    )
    side_by_side(clip, swap, out / "side_by_side.mp4")

    log("[4/4] evaluating the swap")
    evaluation, report = evaluate(
        EvaluateConfig(
            clip,
            swap,
            model,
            TARGET,
            SOURCE,
            {SOURCE: faces["held-out"]},
            out / "report",
            target_faces=faces[TARGET],
            progress=cfg.progress,
        )
    )
    for name in ("preview.png", "loss.png"):
        write_output(out / name, (model / name).read_bytes())
    files = {
        "swapped video (with the source's audio)": swap,
        "side-by-side video": out / "side_by_side.mp4",
        "training preview grid": out / "preview.png",
        "loss curve": out / "loss.png",
        "evaluation report": report,
        "evaluation figures (JSON)": report.with_suffix(".json"),
        "model": model,
    }
    return DemoResult(evaluation, files, time.perf_counter() - start)
