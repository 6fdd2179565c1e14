"""The `dualface` command: one sub-command per stage, each a thin layer over the stage's config and function."""

import logging
import sys
from pathlib import Path

import numpy as np
import typer
from tqdm.contrib.logging import logging_redirect_tqdm

from dualface import __version__
from dualface.augment import AugmentConfig
from dualface.color import COLOR_TRANSFERS
from dualface.convert import ConvertConfig, convert
from dualface.demo import DemoConfig, run_demo
from dualface.errors import DualfaceError
from dualface.evaluate import EvaluateConfig, evaluate
from dualface.extract import ExtractConfig, ExtractSummary, extract
from dualface.inspection import inspect_sets
from dualface.losses import LOSSES
from dualface.model import MODEL_PRESETS
from dualface.train import TrainConfig, parse_duration, train
from dualface.watermark import verify

app = typer.Typer(
    name="dualface",
    help="Face-swap studio: extract faces, train a shared-encoder autoencoder, convert, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
EXTRACT = ExtractConfig(inputs=[Path(".")], output=Path("."))  # the defaults, for --help


def _version(value: bool) -> None:
    if value:
        print(f"dualface {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more detail."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s")


@app.command("extract")
def extract_command(
    inputs: list[Path] = typer.Argument(..., help="Videos, images, or folders of them.", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the face PNGs and alignments files."),
    size: int = typer.Option(EXTRACT.size, help="Side of the aligned face crops, in pixels."),
    coverage: float = typer.Option(EXTRACT.coverage, help="Share of the crop's width the face spans (0.8: tight)."),
    centering: str = typer.Option(EXTRACT.centering, help="'face' (brows to chin) or 'head' (takes in the forehead)."),
    detector: str = typer.Option(EXTRACT.detector, help="'hog' (fast) or 'cnn' (dlib's MMOD CNN: slower, finds more)."),
    detect_every: int = typer.Option(EXTRACT.detect_every, help="Frames between detections while faces are tracked."),
    detect_size: int = typer.Option(EXTRACT.detect_size, help="Longest side of the frame the detector scans."),
    every: int = typer.Option(EXTRACT.every, help="Process every Nth frame of a video."),
    min_size: int = typer.Option(EXTRACT.min_size, help="Ignore faces smaller than this many source pixels."),
    smooth: bool = typer.Option(EXTRACT.smooth, help="Smooth landmarks over time in videos."),
    reference: list[Path] = typer.Option(
        [], "--reference", "-r", help="Photo of the person to keep (repeatable); other faces are skipped."
    ),
    threshold: float = typer.Option(EXTRACT.threshold, help="Largest embedding distance to a reference kept."),
    embed_every: int = typer.Option(EXTRACT.embed_every, help="Frames between identity embeddings of a face."),
    overwrite: bool = typer.Option(False, help="Extract again inputs already extracted into OUTPUT."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Detect, track and align faces: writes aligned face PNGs and one alignments file per input."""
    config = ExtractConfig(
        inputs=inputs,
        output=output,
        size=size,
        coverage=coverage,
        centering=centering,
        detector=detector,
        detect_every=detect_every,
        detect_size=detect_size,
        every=every,
        min_size=min_size,
        smooth=smooth,
        references=reference,
        threshold=threshold,
        embed_every=embed_every,
        overwrite=overwrite,
        progress=progress and sys.stderr.isatty(),
    )
    _report(config, _run_extract(config))


def _run_extract(config: ExtractConfig) -> ExtractSummary:
    with logging_redirect_tqdm():
        return extract(config)


def _report(config: ExtractConfig, summary: ExtractSummary) -> None:
    output = config.output
    for item in summary.inputs:
        if item.error:
            continue
        state = "already extracted" if item.skipped else f"{item.fps:.1f} fps"
        print(
            f"{item.path}: {item.frames_processed} frames, {item.faces_written} faces, "
            f"{item.frames_processed - item.frames_with_face} without a face ({state})"
        )
    done = [s for s in summary.inputs if not s.error]
    print(
        f"extracted {len(done)} of {len(summary.inputs)} inputs into {output}: "
        f"{summary.total('frames_read')} frames read, {summary.total('frames_processed')} searched, "
        f"{summary.total('faces_written')} faces, "
        f"{summary.total('frames_processed') - summary.total('frames_with_face')} frames without a face"
        + (f", {summary.fps:.1f} fps" if summary.fps else "")
    )
    if summary.errors:
        for error in summary.errors:
            print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1)


TRAIN = TrainConfig(faces=[Path("a"), Path("b")], model_dir=Path("."))  # the defaults, for --help


@app.command("train")
def train_command(
    faces: list[Path] = typer.Argument(..., help="Two or more face folders from `dualface extract`, one per identity."),
    model_dir: Path = typer.Option(..., "--model", "-m", help="Folder for checkpoints, previews and logs."),
    name: list[str] = typer.Option([], "--name", help="Identity names, one per face folder (default: folder names)."),
    preset: str = typer.Option(TRAIN.preset, help=f"Model: {', '.join(MODEL_PRESETS)}."),
    shared_upscales: int | None = typer.Option(
        None, help="Decoder upscales shared by all identities (default: the preset's; 0: classic separate decoders)."
    ),
    cycle_weight: float = typer.Option(TRAIN.cycle_weight, help="Latent cycle consistency: swaps encode back."),
    batch_size: int = typer.Option(TRAIN.batch_size, help="Faces per identity per step (per process)."),
    lr: float | None = typer.Option(None, help="Adam learning rate (default: 2e-4 for lite, 5e-5 otherwise)."),
    warmup: int = typer.Option(TRAIN.warmup, help="Steps of learning-rate warmup."),
    loss: str = typer.Option(TRAIN.loss, help=f"Reconstruction loss: {', '.join(LOSSES)}."),
    eye_weight: float = typer.Option(TRAIN.augment.eye_weight, help="Loss weight on the eyes."),
    mouth_weight: float = typer.Option(TRAIN.augment.mouth_weight, help="Loss weight on the mouth."),
    mask: str = typer.Option(TRAIN.augment.mask, help="Loss mask from the landmarks: hull or extended."),
    precision: str = typer.Option(TRAIN.precision, help="auto (bf16 where the hardware has it), fp32 or bf16."),
    device: str = typer.Option(TRAIN.device, help="auto, cpu, cuda or cuda:N."),
    iterations: int | None = typer.Option(None, help="Stop after this many steps."),
    epochs: float | None = typer.Option(None, help="Stop after this many passes over the largest face set."),
    target_loss: float | None = typer.Option(None, help="Stop when every identity's smoothed loss is below this."),
    time: str | None = typer.Option(None, "--time", help="Stop after this long, e.g. 20m, 1h30m."),
    save_every: int = typer.Option(TRAIN.save_every, help="Steps between checkpoints."),
    preview_every: int = typer.Option(TRAIN.preview_every, help="Steps between preview grids."),
    keep: int = typer.Option(TRAIN.keep, help="Checkpoints kept besides the best."),
    resume: bool = typer.Option(False, help="Continue the model in --model."),
    init: Path | None = typer.Option(None, help="Start from these weights (a checkpoint) instead of random ones."),
    best_by: str = typer.Option(
        TRAIN.best_by,
        help="What best.safetensors is best at: loss, or a held-out figure such as 'a->b/mouth' (undefined: last).",
    ),
    freeze: list[str] = typer.Option([], help="Leave this part untrained (encoder, trunk, decoders). Repeatable."),
    eval_every: int = typer.Option(0, help="Steps between identity/reconstruction figures on held-out faces."),
    eval_faces: int = typer.Option(TRAIN.eval_faces, help="At most this many held-out faces measured per identity."),
    held_out: list[str] = typer.Option(
        [],
        "--held-out",
        help="IDENTITY=FOLDER of faces from clips not trained on, for --eval-every (default: an identity's last "
        "whole clips are held out). Repeatable.",
    ),
    average: float = typer.Option(
        TRAIN.average, help="Decay of the weights' moving average used for previews and conversion (0: off)."
    ),
    seed: int = typer.Option(TRAIN.seed, help="Random seed."),
    threads: int = typer.Option(
        TRAIN.threads, help="CPU threads (0: the cores other processes leave idle, re-measured while training)."
    ),
    max_faces: int | None = typer.Option(None, help="Use at most this many faces per identity."),
    timelapse: bool = typer.Option(False, help="Keep every preview, for a timelapse."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train the shared encoder and one decoder per identity. Ctrl-C stops cleanly and saves."""
    augment = AugmentConfig(eye_weight=eye_weight, mouth_weight=mouth_weight, mask=mask)
    config = TrainConfig(
        faces=faces,
        model_dir=model_dir,
        names=name,
        preset=preset,
        shared_upscales=shared_upscales,
        cycle_weight=cycle_weight,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        loss=loss,
        augment=augment,
        precision=precision,
        device=device,
        iterations=iterations,
        epochs=epochs,
        target_loss=target_loss,
        time_limit=parse_duration(time) if time else None,
        save_every=save_every,
        preview_every=preview_every,
        keep=keep,
        resume=resume,
        init=init,
        eval_every=eval_every,
        freeze=tuple(freeze),
        best_by=best_by,
        eval_faces=eval_faces,
        held_out=_named_folders(held_out, "--held-out"),
        average=average,
        threads=threads,
        seed=seed,
        max_faces=max_faces,
        timelapse=timelapse,
        progress=progress and sys.stderr.isatty(),
    )
    if not any([iterations, epochs, target_loss, time]):
        print("no stop rule given: training until Ctrl-C (see --iterations, --epochs, --target-loss, --time)")
    with logging_redirect_tqdm():
        summary = train(config)
    print(
        f"stopped by {summary.stopped_by} at step {summary.step}: {summary.examples_per_second:.1f} EGs/s, "
        f"losses " + ", ".join(f"{n} {v:.4f}" for n, v in summary.losses.items())
    )
    print(f"checkpoint {summary.checkpoint}; preview {model_dir / 'preview.png'}; loss curve {model_dir / 'loss.png'}")


CONVERT = ConvertConfig(input=Path("."), model=Path("."), output=Path("."), to="")


@app.command("convert")
def convert_command(
    input: Path = typer.Argument(..., help="A video, an image, or a folder of images."),
    model_dir: Path = typer.Option(..., "--model", "-m", help="The model folder `dualface train` wrote."),
    to: str = typer.Option(..., "--to", help="The identity to draw the faces as."),
    output: Path = typer.Option(..., "--output", "-o", help="Output video (.mp4, .mov, .mkv), image, or folder."),
    checkpoint: str = typer.Option(CONVERT.checkpoint, help="best, last, or a checkpoint file."),
    source: str | None = typer.Option(None, "--from", help="Swap only faces of this identity (by face embedding)."),
    alignments: Path | None = typer.Option(None, help="Reuse this alignments file from `dualface extract`."),
    mask: str = typer.Option(CONVERT.mask, help="Blend mask: hull, extended, or learned (hd models)."),
    erode: float = typer.Option(CONVERT.erode, help="Shrink the mask by this % of the face crop (negative grows)."),
    feather: float = typer.Option(CONVERT.feather, help="Soft edge of the mask, % of the face crop."),
    color: str = typer.Option(CONVERT.color, help=f"Colour transfer: {', '.join(COLOR_TRANSFERS)}."),
    blend: str = typer.Option(CONVERT.blend, help="alpha (feathered) or poisson (cv2.seamlessClone)."),
    smooth: bool = typer.Option(CONVERT.smooth, help="Smooth placement, mask and colour over frames."),
    crf: int = typer.Option(CONVERT.crf, help="H.264 quality: 0 lossless, 18 visually clean, 28 small."),
    preset: str = typer.Option(CONVERT.preset, help="x264 speed preset (ultrafast ... veryslow)."),
    batch: int = typer.Option(CONVERT.batch, help="Frames whose faces go through the model together."),
    detect_every: int = typer.Option(CONVERT.detect_every, help="Frames between detections while tracking."),
    watermark: bool = typer.Option(CONVERT.watermark, help="Mark every frame as synthetic (invisible watermark)."),
    device: str = typer.Option(CONVERT.device, help="cpu, cuda or cuda:N."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Swap faces in a video (keeping its sound) or in images, with a trained model."""
    config = ConvertConfig(
        input=input,
        model=model_dir,
        output=output,
        to=to,
        checkpoint=checkpoint,
        source=source,
        alignments=alignments,
        mask=mask,
        erode=erode,
        feather=feather,
        color=color,
        blend=blend,
        smooth=smooth,
        crf=crf,
        preset=preset,
        batch=batch,
        detect_every=detect_every,
        watermark=watermark,
        device=device,
        progress=progress and sys.stderr.isatty(),
    )
    if not watermark:
        print("warning: --no-watermark: the frames carry no invisible mark (the metadata still says synthetic)")
    with logging_redirect_tqdm():
        summary = convert(config)
    print(f"used {summary.checkpoint} (step {summary.step})")
    print(
        f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps): {summary.faces_swapped} faces "
        f"swapped; {summary.frames_without_swap} frames without a face passed through unchanged"
    )
    print(f"wrote {summary.output}")


@app.command("verify")
def verify_command(
    file: Path = typer.Argument(..., help="A video or image that dualface may have made."),
    samples: int = typer.Option(30, help="Video frames to check, spread over the video (0: every frame)."),
) -> None:
    """Read back the synthetic label: the invisible watermark on sampled frames, and the metadata.
    Exits 0 when the watermark is found, 3 when it is not."""
    if samples < 0:
        raise DualfaceError(f"--samples must be 0 (every frame) or more, not {samples}")
    report = verify(file, samples)
    for index, found in report.frames:
        print(f"frame {index:6d}: {'watermark found' if found else 'no watermark'}")
    print(f"metadata: {report.metadata or 'no synthetic label'}")
    print(f"{file}: watermark found on {report.found}/{len(report.frames)} frames checked -> {report.verdict}")
    if not report.marked:
        raise typer.Exit(3)


@app.command("evaluate")
def evaluate_command(
    source: Path = typer.Argument(..., help="The original video."),
    output: Path = typer.Argument(..., help="Its conversion by `dualface convert`."),
    model_dir: Path = typer.Option(..., "--model", "-m", help="The model that converted it."),
    to: str = typer.Option(..., "--to", help="The identity swapped in."),
    source_identity: str | None = typer.Option(None, "--from", help="The identity in the source (default: the other)."),
    held_out: list[str] = typer.Option(
        [], "--held-out", help="IDENTITY=FOLDER of faces not used in training: reconstruction SSIM/PSNR. Repeatable."
    ),
    report: Path | None = typer.Option(None, "--report", "-o", help="Report folder (default: beside the output)."),
    embed_frames: int = typer.Option(100, help="At most this many frames get an identity embedding (0.13 s each)."),
    checkpoint: str | None = typer.Option(
        None, help="best, last, or a checkpoint file (default: the one the conversion recorded)."
    ),
    target_faces: Path | None = typer.Option(
        None, help="Real faces of the target, for sharpness and the identity gap (default: its training faces)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Measure a swap against its controls (a static swap, the source itself): identity, expression, pose,
    sharpness, flicker, and a verdict; writes JSON and HTML."""
    if embed_frames < 1:
        raise DualfaceError(f"--embed-frames must be at least 1, not {embed_frames}")
    pairs = _named_folders(held_out, "--held-out")
    config = EvaluateConfig(
        source=source,
        output=output,
        model=model_dir,
        to=to,
        source_identity=source_identity,
        held_out=pairs,
        report=report,
        embed_frames=embed_frames,
        checkpoint=checkpoint,
        target_faces=target_faces,
        progress=progress and sys.stderr.isatty(),
    )
    with logging_redirect_tqdm():
        evaluation, html_path = evaluate(config)
    _print_evaluation(evaluation)
    print(f"report: {html_path} (and report.json beside it)")


@app.command("inspect")
def inspect_command(
    faces_a: Path = typer.Argument(..., help="Face folder of the identity to be replaced (A)."),
    faces_b: Path = typer.Argument(..., help="Face folder of the identity drawn in its place (B)."),
    output: Path = typer.Option(Path("coverage.png"), "--output", "-o", help="Where to write the histograms (PNG)."),
    min_faces: int = typer.Option(5, help="B needs at least this many faces where A has some."),
) -> None:
    """Do the face sets cover the same poses and expressions? Histograms, and a line of advice per gap."""
    if min_faces < 1:
        raise DualfaceError(f"--min-faces must be at least 1, not {min_faces}")
    a, b, gaps = inspect_sets(faces_a, faces_b, output, min_faces=min_faces)
    for stats in (a, b):
        p5, p95 = (lambda v: np.percentile(v, 5)), (lambda v: np.percentile(v, 95))
        print(
            f"{stats.name}: {len(stats)} faces; yaw {p5(stats.yaw):.0f}..{p95(stats.yaw):.0f} deg, "
            f"pitch {p5(stats.pitch):.0f}..{p95(stats.pitch):.0f} deg, mouth opening up to {p95(stats.mouth):.2f}, "
            f"eyes {p5(stats.eyes):.2f}..{p95(stats.eyes):.2f} (5th-95th percentile)"
        )
    if not gaps:
        print(f"{b.name} covers every pose and expression bin where {a.name} has faces.")
    for gap in gaps:
        print(f"gap: {gap.advice}")
    print(f"histograms: {output}")


@app.command("ui")
def ui_command(
    workspace: Path = typer.Option(Path("dualface-studio"), "--workspace", "-w", help="Project folder it works in."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (anything but loopback is reachable by others)."),
    port: int = typer.Option(7860, help="Port to listen on."),
    max_upload_mb: int = typer.Option(500, help="Largest upload accepted, MB."),
    allowed_host: list[str] = typer.Option(
        [], help="A name the server may be addressed by besides localhost (with --host). Repeatable."
    ),
) -> None:
    """The web UI: footage, faces, training, conversion and evaluation from a browser."""
    if not 0 < port < 65536:
        raise DualfaceError(f"--port must be between 1 and 65535, not {port}")
    from dualface.ui import serve

    serve(workspace, host=host, port=port, max_upload_mb=max_upload_mb, allowed_hosts=allowed_host)


def _named_folders(items: list[str], flag: str) -> dict[str, Path]:
    pairs = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name:
            raise DualfaceError(f"{flag} {item!r}: write it as IDENTITY=FOLDER")
        pairs[name] = Path(folder)
    return pairs


def _print_evaluation(ev) -> None:
    from dualface.report import score_table

    print(f"{ev.output}: {ev.target} drawn by {ev.checkpoint} (step {ev.step}); {ev.frames_scored} frames with a face")
    for row in score_table(ev):
        print("  " + row)
    for name, q in ev.reconstruction.items():
        print(f"reconstruction of {name}: SSIM {q['ssim']:.3f}, PSNR {q['psnr']:.1f} dB on {q['faces']} held-out faces")
    print("verdict: " + ("usable" if ev.usable else "not usable yet (below the bar: " + ", ".join(ev.failed) + ")"))


DATA = Path(__file__).resolve().parents[2] / "data"  # the footage bundled in the repository


@app.command("demo")
def demo_command(
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="Folder for everything the demo writes."),
    data: Path = typer.Option(DATA, help="The bundled footage (the repository's data/ folder)."),
    iterations: int = typer.Option(DemoConfig.iterations, help="Training steps."),
    from_scratch: bool = typer.Option(False, help="Train from random weights instead of the starter (slower)."),
    starter: Path = typer.Option(DemoConfig.starter, help="The starter weights (the repository's models/ folder)."),
) -> None:
    """The whole workflow on the bundled footage: extract, train, convert a held-out clip, evaluate."""
    if iterations < 1:
        raise DualfaceError(f"--iterations must be at least 1, not {iterations}")
    config = DemoConfig(output=output, data=data, iterations=iterations, progress=sys.stderr.isatty())
    config.starter = None if from_scratch else starter
    with logging_redirect_tqdm():
        result = run_demo(config)
    _print_evaluation(result.evaluation)
    print(f"\ndemo finished in {result.seconds / 60:.1f} min; it wrote:")
    for what, path in result.files.items():
        print(f"  {what:40s} {path}")


def main() -> None:
    """Entry point: user-facing errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        app()
    except DualfaceError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to continue where it stopped", file=sys.stderr)
        sys.exit(130)
