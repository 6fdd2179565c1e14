"""The `dualface` command: one sub-command per stage. Each stage's options are built from its config's
fields (`config.py`: declared once, with help, bounds and choices); its work is imported only when it runs,
so `--help`, `verify` and `ui` never load torch.
"""

import dataclasses
import inspect
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from dualface import __version__
from dualface.config import PROGRESS_ENV, ConvertConfig, DemoConfig, EvaluateConfig, ExtractConfig, TrainConfig
from dualface.distributed import DIST_FILE
from dualface.errors import DualfaceError
from dualface.options import Option

app = typer.Typer(
    name="dualface",
    help="Face-swap studio: extract faces, train a shared-encoder autoencoder, convert, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


# ---------------------------------------------------------------------------------------------------------
# a stage's command, from its config


def _fields(cls: type) -> list[tuple[tuple[str, ...], dataclasses.Field, Option]]:
    """A config's command-line options, nested configs (train's augment, convert's paste) flattened in."""
    found = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type):
            found += [((f.name, *path), g, opt) for path, g, opt in _fields(f.type)]
        elif "option" in f.metadata and f.metadata["option"].cli:
            found.append(((f.name,), f, f.metadata["option"]))
    return found


def _parameter(name: str, f: dataclasses.Field, opt: Option) -> inspect.Parameter:
    kind = opt.cli_type or f.type
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    if required:
        default: Any = ...
    elif f.default_factory is not dataclasses.MISSING:
        default = list(f.default_factory())  # lists, tuples and dicts: a repeatable option, empty by default
    else:
        default = f.default
    help = opt.help + (f" Choices: {', '.join(opt.choices())}." if opt.choices else "")
    if opt.argument:
        info = typer.Argument(default, help=help, show_default=False, metavar=name.upper())
    else:
        flags = opt.names(name)
        if kind in (bool, bool | None):  # an on/off pair; None: the preset decides
            flags = [f"{flags[0]}/--no-{flags[0][2:]}"]
        info = typer.Option(default, *flags, help=help, show_default=not required and default not in (None, []))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind)


def _build(cls: type, values: dict[str, Any]) -> Any:
    """The config from the command line's values: parsed where the option says how, nested configs too."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type):
            kwargs[f.name] = _build(f.type, values)
        elif f.name in values:
            opt = f.metadata["option"]
            value = values[f.name]
            kwargs[f.name] = opt.parse(value) if opt.parse and value is not None else value
    if "progress" in kwargs:  # a bar is noise in a file, unless a reader asked for it (PROGRESS_ENV)
        kwargs["progress"] = kwargs["progress"] and (sys.stderr.isatty() or os.environ.get(PROGRESS_ENV) == "1")
    return cls(**kwargs)


def _train_kept(config: TrainConfig) -> str:
    from dualface.files import latest_checkpoint

    if latest_checkpoint(config.model_dir):
        return "the last checkpoint saved is kept: add --resume to the same command to continue"
    return "nothing was saved yet (it was still starting): run the same command again"


# What Ctrl-C (or SIGTERM, in `train`) leaves behind, said in one line as the stage stops.
INTERRUPTED: dict[str, Callable[[Any], str]] = {
    "extract": lambda config: "what was extracted is kept: run the same command again to continue where it stopped",
    "train": _train_kept,
    "convert": lambda config: "nothing was written to the output (a file already there is untouched)",
    "evaluate": lambda config: "no report was written",
    "demo": lambda config: "a new demo run starts its training afresh",
}


def interrupted(stage: str, config: Any) -> typer.Exit:
    """Say what an interrupted stage leaves behind; the exit a shell gives a process stopped by Ctrl-C."""
    if not _rank():
        print(f"interrupted: {INTERRUPTED[stage](config)}", file=sys.stderr)
    return typer.Exit(130)


def stage_command(name: str, cls: type) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register `run(config)` as the sub-command `name`, its options the fields of `cls`."""

    def register(run: Callable[[Any], None]) -> Callable[[Any], None]:
        options = _fields(cls)
        names = [path[-1] for path, _, _ in options]
        assert len(set(names)) == len(names), f"{cls.__name__}: two options share a name"

        def command(**values: Any) -> None:
            config = _build(cls, values)
            try:
                run(config)
            except KeyboardInterrupt:  # here: Typer would end the process silently, with no word of what is kept
                raise interrupted(name, config) from None

        params = [_parameter(path[-1], f, opt) for path, f, opt in options]
        params.sort(key=lambda p: not isinstance(p.default, typer.models.ArgumentInfo))  # arguments first
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__doc__ = run.__doc__
        app.command(name)(command)
        return run

    return register


# ---------------------------------------------------------------------------------------------------------
# the stages


@stage_command("extract", ExtractConfig)
def extract_command(config: ExtractConfig) -> None:
    """Detect, track and align faces: writes aligned face PNGs and one alignments file per input."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dualface.extract import extract

    with logging_redirect_tqdm():
        summary = extract(config)
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
        f"extracted {len(done)} of {len(summary.inputs)} inputs into {config.output}: "
        f"{summary.total('frames_read')} frames read, {summary.total('frames_processed')} searched, "
        f"{summary.total('faces_written')} faces, "
        f"{summary.total('frames_processed') - summary.total('frames_with_face')} frames without a face"
        + (f", {summary.fps:.1f} fps" if summary.fps else "")
    )
    if summary.errors:
        for error in summary.errors:
            print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1)


def _launch_workers(processes: int) -> int:
    """This same command again as `processes` workers of one thread each, data-parallel over gloo (started
    as torchrun would start them); their highest exit code. A Ctrl-C reaches the workers too (one process
    group), and SIGTERM to the launcher alone is passed on to them: they stop together at a step's end and
    save, and the launcher waits for them. When one fails, the others, which would wait for it at their
    next step, are stopped if they do not end by `GRACE`, and killed if they have not saved by `KILL`."""
    with tempfile.TemporaryDirectory(prefix="dualface-workers-") as meeting:
        # The workers meet at a file, not a port: a free port found here could be taken before they bind it.
        env = {**os.environ, "OMP_NUM_THREADS": "1", DIST_FILE: str(Path(meeting) / "store")}
        command = [sys.executable, "-m", "dualface", *sys.argv[1:]]
        workers = [
            subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(processes)})
            for r in range(processes)
        ]
        return _wait_for(workers)


# A failed worker's peers usually meet the same error a moment later and end on their own, rank 0 saying
# why; stopped at once, rank 0 could die before it says it, and the exit code would be the stop's (143).
GRACE = 10.0
# Then a stopped worker saves at its step's end (a large model's save: 17 s on 2 cores); one that has not
# ended by then is stuck waiting in a collective for the failed one, and only SIGKILL ends it.
KILL = 60.0


def _wait_for(workers: list[subprocess.Popen], grace: float = GRACE, kill: float = KILL) -> int:
    """The workers' highest exit code, once all have ended, counting those this launcher stopped only if no
    other failed (see `_launch_workers`)."""
    failed_at, stopped_at, stopped = None, None, set()

    def signal_all(send: Callable[[subprocess.Popen], None]) -> None:
        for i, worker in enumerate(workers):
            if worker.poll() is None:
                send(worker)
                stopped.add(i)

    before = signal.signal(signal.SIGTERM, lambda signum, frame: signal_all(subprocess.Popen.terminate))
    try:
        while True:
            try:
                codes = [w.poll() for w in workers]
                if all(code is not None for code in codes):
                    own = [c for i, c in enumerate(codes) if c and i not in stopped] or [c for c in codes if c]
                    return max((c if c > 0 else 128 - c for c in own), default=0)  # killed by signal s: 128 + s
                now = time.monotonic()
                if failed_at is None and any(codes):
                    failed_at = now
                if stopped_at is None and failed_at is not None and now - failed_at > grace:
                    signal_all(subprocess.Popen.terminate)
                    stopped_at = now
                if stopped_at is not None and now - stopped_at > kill:
                    signal_all(subprocess.Popen.kill)
                time.sleep(0.2)
            except KeyboardInterrupt:
                pass  # the workers, in this process group, had it too: they save and stop; wait for them
    finally:
        signal.signal(signal.SIGTERM, before)


def _rank() -> int:
    """This process's rank among `train --processes` workers (or torchrun's); 0 in a single process."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


@stage_command("train", TrainConfig)
def train_command(config: TrainConfig) -> None:
    """Train the shared encoder and one decoder per identity. Ctrl-C stops cleanly and saves."""
    if config.processes > 1 and "WORLD_SIZE" not in os.environ:  # the launcher, not yet a worker
        raise typer.Exit(_launch_workers(config.processes))
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dualface.train import train

    if _rank():  # another worker: the first one speaks for all
        train(config)
        return
    if not any([config.iterations, config.epochs, config.target_loss, config.time_limit]):
        print("no stop rule given: training until Ctrl-C (see --iterations, --epochs, --target-loss, --time)")
    with logging_redirect_tqdm():
        summary = train(config)
    print(
        f"stopped by {summary.stopped_by} at step {summary.step}: {summary.examples_per_second:.1f} EGs/s, "
        f"losses " + ", ".join(f"{n} {v:.4f}" for n, v in summary.losses.items())
    )
    folder = config.model_dir
    print(f"checkpoint {summary.checkpoint}; preview {folder / 'preview.png'}; loss curve {folder / 'loss.png'}")
    if summary.stopped_by == "interrupted":  # saved, but not done: `train ... && convert ...` must not go on
        raise interrupted("train", config)


@stage_command("convert", ConvertConfig)
def convert_command(config: ConvertConfig) -> None:
    """Swap faces in a video (keeping its sound) or in images, with a trained model."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dualface.convert import convert

    if not config.watermark:
        print("warning: --no-watermark: the frames carry no invisible mark (the metadata still says synthetic)")
    with logging_redirect_tqdm():
        summary = convert(config)
    print(f"used {summary.checkpoint} (step {summary.step})")
    print(
        f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps): {summary.faces_swapped} faces "
        f"swapped; {summary.frames_without_swap} frames without a face passed through unchanged"
    )
    print(f"wrote {summary.output}")


@stage_command("evaluate", EvaluateConfig)
def evaluate_command(config: EvaluateConfig) -> None:
    """Measure a swap against its controls (a static swap, the source itself): identity, expression, pose,
    sharpness, flicker, and a verdict; writes JSON and HTML."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dualface.evaluate import evaluate

    with logging_redirect_tqdm():
        evaluation, html_path = evaluate(config)
    _print_evaluation(evaluation)
    print(f"report: {html_path} (and report.json beside it)")


@stage_command("demo", DemoConfig)
def demo_command(config: DemoConfig) -> None:
    """The whole workflow on the bundled footage: extract, train, convert a held-out clip, evaluate."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from dualface.demo import run_demo

    with logging_redirect_tqdm():
        result = run_demo(config)
    _print_evaluation(result.evaluation)
    print(f"\ndemo finished in {result.seconds / 60:.1f} min; it wrote:")
    for what, path in result.files.items():
        print(f"  {what:40s} {path}")


def _print_evaluation(ev) -> None:
    from dualface.report import score_table, verdict_line

    print(f"{ev.output}: {ev.target} drawn by {ev.checkpoint} (step {ev.step}); {ev.frames_scored} frames with a face")
    for row in score_table(ev):
        print("  " + row)
    for name, q in ev.reconstruction.items():
        print(f"reconstruction of {name}: SSIM {q['ssim']:.3f}, PSNR {q['psnr']:.1f} dB on {q['faces']} held-out faces")
    print("verdict: " + verdict_line(ev))


# ---------------------------------------------------------------------------------------------------------
# the tools around the stages


@app.command("verify")
def verify_command(
    file: Path = typer.Argument(..., help="A video or image that dualface may have made."),
    samples: int = typer.Option(30, help="Video frames to check, spread over the video (0: every frame)."),
) -> None:
    """Read back the synthetic label: the invisible watermark on sampled frames, and the metadata.
    Exits 0 when the watermark is found (on frames under 256 px, too small to carry it: when the metadata
    says synthetic), 3 when it is not."""
    from dualface.watermark import verify

    if samples < 0:
        raise DualfaceError(f"--samples must be 0 (every frame) or more, not {samples}")
    report = verify(file, samples)
    for index, found in report.frames:
        print(f"frame {index:6d}: {'watermark found' if found else 'no watermark'}")
    print(f"metadata: {report.metadata or 'no synthetic label'}")
    print(f"{file}: watermark found on {report.found}/{len(report.frames)} frames checked -> {report.verdict}")
    if not report.synthetic:
        raise typer.Exit(3)


@app.command("inspect")
def inspect_command(
    faces_a: Path = typer.Argument(..., help="Face folder of the identity to be replaced (A)."),
    faces_b: Path = typer.Argument(..., help="Face folder of the identity drawn in its place (B)."),
    output: Path = typer.Option(Path("coverage.png"), "--output", "-o", help="Where to write the histograms (PNG)."),
    min_faces: int = typer.Option(5, help="B needs at least this many faces where A has some."),
) -> None:
    """Do the face sets cover the same poses and expressions? Histograms, and a line of advice per gap."""
    import numpy as np

    from dualface.inspection import inspect_sets

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


def main() -> None:
    """Entry point: user-facing errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        app()
    except DualfaceError as error:
        if not _rank():  # `train --processes`: every worker meets the same error
            print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
