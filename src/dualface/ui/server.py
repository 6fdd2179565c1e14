"""The web UI: one page over a project workspace (workspace.py), whose buttons start `dualface` commands as
jobs (jobs.py) and whose script polls `/api/state` for what changed. The server holds no pipeline logic.

Safety, for a server that runs commands and serves files: files are served only from inside the workspace;
uploads are size-limited, must have a media extension and be readable as such, and get sanitised names;
every POST must carry an `X-Dualface` header, which a page on another site cannot add without a CORS
preflight this server never grants, so no other site can start jobs or upload through your browser.
"""

import contextlib
import hashlib
import ipaddress
import logging
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from dualface import __version__
from dualface.config import ROOT, ConvertConfig, EvaluateConfig, ExtractConfig, TrainConfig, default_report_folder
from dualface.errors import DualfaceError
from dualface.files import TRAINING_LOG
from dualface.options import argv, default, find
from dualface.presets import DEFAULT_PRESET, MODEL_PRESETS
from dualface.ui import jobs
from dualface.ui.workspace import (
    SLOTS,
    RequestError,
    check_slot,
    drop_face,
    extracted_settings,
    has_model,
    init_workspace,
    inside,
    list_faces,
    list_footage,
    model_step,
    read_names,
    store_uploads,
    training_progress,
    write_names,
)
from dualface.video import VIDEO_EXTENSIONS

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STARTERS = ROOT / "models"  # the repository's starter weights (models/README.md): a source checkout's only
MAX_FILES = 50  # per upload request
TRAIN_STEPS = (1000, 1, 10_000_000)  # the steps field's default and bounds: the UI's own, not an option's
PREVIEW_EVERY = 25  # the UI refreshes its preview more often than the command line's default
log = logging.getLogger(__name__)


@dataclass
class Studio:
    root: Path
    max_upload_mb: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)  # runners this server started

    def start(self, kind: str, label: str, commands: list[list[str]], **params: Any) -> str:
        job, process = jobs.start(self.root, kind, label, commands, params)
        self.processes[job.id] = process
        return job.id

    def running(self, kind: str, **params: Any) -> jobs.Job | None:
        for job in jobs.list_jobs(self.root, self.processes):
            if job.status == "running" and job.kind == kind and all(job.params.get(k) == v for k, v in params.items()):
                return job
        return None


def _studio(request: Request) -> Studio:
    return request.app.state.studio


def _starters() -> list[str]:
    """Weights a new model may start from (`dualface train --init`): chosen by name from this list only."""
    return sorted(p.name for p in STARTERS.glob("*.safetensors")) if STARTERS.is_dir() else []


# ---------------------------------------------------------------------------------------------------------
# pages and state


def index(request: Request) -> Response:
    studio = _studio(request)
    # Extracting again with other settings than the faces' needs "overwrite": the form starts from theirs.
    extracted = extracted_settings(studio.root)
    fields = {
        "every": _field(ExtractConfig, "every", extracted.get("every")),
        "size": _field(ExtractConfig, "size", extracted.get("size")),
        "steps": {"name": "steps", "value": TRAIN_STEPS[0], "min": TRAIN_STEPS[1], "max": TRAIN_STEPS[2]},
        # empty: the preset's, or a resumed run's own
        "batch_size": {**_field(TrainConfig, "batch_size", ""), "placeholder": "preset's"},
        "preview_every": _field(TrainConfig, "preview_every", PREVIEW_EVERY),
        "embed_frames": _field(EvaluateConfig, "embed_frames"),
    }
    context = {
        "workspace": str(studio.root),
        "max_upload_mb": studio.max_upload_mb,
        "version": __version__,
        "starters": _starters(),
        "presets": list(MODEL_PRESETS),
        "default_preset": DEFAULT_PRESET,
        "fields": fields,
    }
    return TEMPLATES.TemplateResponse(request, "index.html", context)


def _field(config: type, name: str, value: Any = None) -> dict:
    """A number input's name, value and bounds, from the option's declaration (the page copies none)."""
    low, high = _bounds(config, name)
    return {"name": name, "value": default(config, name) if value is None else value, "min": low, "max": high}


def state(request: Request) -> JSONResponse:
    """Everything the page shows, in one poll."""
    studio = _studio(request)
    root = studio.root
    all_jobs = jobs.list_jobs(root, studio.processes)
    return JSONResponse(
        {
            "names": read_names(root),
            "footage": {slot: list_footage(root, slot) for slot in SLOTS},
            "faces": {slot: list_faces(root, slot) for slot in SLOTS},
            "training": _training(root, all_jobs),
            "conversions": _conversions(root, all_jobs),
            "jobs": [_job_summary(root, job) for job in all_jobs[:30]],
        }
    )


def _url(root: Path, path: Path) -> str | None:
    """A /files URL for a workspace file, versioned by its mtime so a refreshed image is fetched again."""
    if not path.is_file():
        return None
    return f"/files/{path.relative_to(root).as_posix()}?v={path.stat().st_mtime_ns}"


def _training(root: Path, all_jobs: list[jobs.Job]) -> dict:
    progress = training_progress(root / "model" / TRAINING_LOG) or {}
    job = next((j for j in all_jobs if j.kind == "train"), None)
    target = job.params.get("target") if job else None
    step = progress.get("step", model_step(root))
    rate = progress.get("steps_per_s")
    running = bool(job and job.status == "running")
    eta = (target - step) / rate if running and target and rate else None
    return {
        **progress,
        "step": step,
        "target": target,
        "eta_s": eta,
        "job": job.id if job else None,
        "running": running,
        "preview": _url(root, root / "model" / "preview.png"),
        "loss_png": _url(root, root / "model" / "loss.png"),
    }


def _conversions(root: Path, all_jobs: list[jobs.Job]) -> list[dict]:
    """Finished conversions, newest first, one per output file."""
    found: dict[str, dict] = {}
    for job in all_jobs:
        output = job.params.get("output")
        if job.kind != "convert" or job.status != "done" or output in found or not (root / output).is_file():
            continue
        report = default_report_folder(root / output) / "report.html"
        found[output] = {
            "job": job.id,
            "label": job.label,
            "output": _url(root, root / output),
            "original": _url(root, root / job.params["original"]),
            "report": _url(root, report),
        }
    return list(found.values())


def _job_summary(root: Path, job: jobs.Job) -> dict:
    if job.kind == "train" and job.status == "running":
        step = (training_progress(root / "model" / TRAINING_LOG, points=1) or {}).get("step", 0)
        progress = f"step {step} / {job.params.get('target')}"
    elif job.kind == "extract" and job.status == "running" and job.params.get("slot") in SLOTS:
        faces = f"{list_faces(root, job.params['slot'], limit=0)['count']} faces so far"
        bar = jobs.bar_state(jobs.last_line(root, job.id))  # the input being read: how far, how fast
        progress = f"{faces}; {bar}" if bar else faces
    elif job.kind == "train" and job.status == "cancelled":
        # Not the command line's advice (add --resume): the UI resumes a model in the workspace by itself.
        saved = "the last checkpoint is kept: Start training continues from it"
        progress = f"stopped; {saved}" if has_model(root) else "stopped before its first checkpoint"
    else:
        progress = job.note or jobs.progress(root, job.id)
    return {
        "id": job.id,
        "kind": job.kind,
        "label": job.label,
        "status": job.status,
        "progress": progress,
        "created": job.created,
        "ended": job.ended,
        "returncode": job.returncode,
    }


# ---------------------------------------------------------------------------------------------------------
# files, uploads, faces


def files(request: Request) -> Response:
    """A file of the workspace, and nothing outside it (404 for what is missing, 403 for what is outside)."""
    root = _studio(request).root
    path = inside(root, request.path_params["path"])
    if not path.is_file():
        raise RequestError(f"{request.path_params['path']}: no such file", 404)
    return FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


async def upload(request: Request) -> JSONResponse:
    """Multipart upload of one or more files into footage/<slot>/."""
    studio = _studio(request)
    slot = check_slot(request.path_params["slot"])
    limit = studio.max_upload_mb * 2**20
    # The declared length refuses an oversized upload before it is read; uvicorn never passes on more body
    # than declared, and store_upload counts each file's bytes too.
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise RequestError("uploads need a Content-Length", 411)
    if int(length) > limit:
        raise RequestError(f"upload of {int(length) / 2**20:.1f} MB is over the {studio.max_upload_mb} MB limit", 413)
    async with request.form(max_files=MAX_FILES, max_fields=10) as form:
        uploads = [item for item in form.getlist("files") if not isinstance(item, str)]
        if not uploads:
            raise RequestError("no file in the upload (the form field is 'files')")
        received = [(item.filename or "", item.file) for item in uploads]
        stored = await run_in_threadpool(store_uploads, studio.root, slot, received, limit)
    return JSONResponse({"stored": [path.name for path in stored]})


async def set_names(request: Request) -> JSONResponse:
    studio = _studio(request)
    body = await _body(request)
    if job := studio.running("train"):  # its checkpoints, the first one too, keep the names it started with
        raise RequestError(f"training is running (job {job.id}): A and B cannot be renamed now", 409)
    return JSONResponse({"names": write_names(studio.root, body)})


def drop(request: Request) -> JSONResponse:
    drop_face(_studio(request).root, check_slot(request.path_params["slot"]), request.path_params["name"])
    return JSONResponse({"dropped": request.path_params["name"]})


# ---------------------------------------------------------------------------------------------------------
# starting and stopping jobs


async def start_extract(request: Request) -> JSONResponse:
    studio = _studio(request)
    body = await _body(request)
    every, size = _option_int(body, ExtractConfig, "every"), _option_int(body, ExtractConfig, "size")
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise RequestError(f"overwrite must be true or false, not {overwrite!r}")
    names = read_names(studio.root)
    slots = [slot for slot in SLOTS if list_footage(studio.root, slot)]
    if not slots:
        raise RequestError("upload footage of A or B first")
    for slot in slots:  # all checked before any starts: a refusal answers for the whole request
        if studio.running("extract", slot=slot):
            raise RequestError(f"extraction of {names[slot]} is already running", 409)
    started = []
    for slot in slots:
        words = argv(ExtractConfig, output=f"faces/{slot}", every=every, size=size)
        if overwrite:  # faces extracted with other settings are deleted and extracted again
            words += argv(ExtractConfig, overwrite=True)
        command = jobs.dualface_command("extract", f"footage/{slot}", *words)
        started.append(studio.start("extract", f"extract faces of {names[slot]}", [command], slot=slot))
    return JSONResponse({"jobs": started})


async def start_train(request: Request) -> JSONResponse:
    studio = _studio(request)
    root = studio.root
    body = await _body(request)
    steps = _int(body, "steps", *TRAIN_STEPS)
    preview_every = _option_int(body, TrainConfig, "preview_every", PREVIEW_EVERY)
    preset = str(body.get("preset", DEFAULT_PRESET))
    if preset not in MODEL_PRESETS:
        raise RequestError(f"unknown preset {preset!r}: choose one of {', '.join(MODEL_PRESETS)}")
    # Left empty: no --batch-size, so the command's rule holds (the preset's; on --resume the run's own).
    batch_size = None if body.get("batch_size") in (None, "") else _option_int(body, TrainConfig, "batch_size")
    init = str(body.get("init") or "")
    if init and init not in _starters():
        raise RequestError(f"no starter weights named {init!r}")
    if job := studio.running("train"):
        raise RequestError(f"training is already running (job {job.id})", 409)
    if studio.running("extract"):
        raise RequestError("extraction is still running: train when it has finished", 409)
    names = read_names(root)
    for slot in SLOTS:
        if not list_faces(root, slot, limit=0)["count"]:
            raise RequestError(f"no faces of {names[slot]} yet: upload footage and extract faces first")
    start_step = model_step(root)
    target = start_step + steps  # --iterations counts from step 0, and a resumed model is past it
    words = argv(
        TrainConfig, model_dir="model", names=[names["a"], names["b"]], batch_size=batch_size, iterations=target,
        preview_every=preview_every,
    )  # fmt: skip
    command = jobs.dualface_command("train", "faces/a", "faces/b", *words)
    label = f"train {names['a']} <-> {names['b']} to step {target}"
    # The preset is the form's for a new model only: a model it continues, or starter weights it starts
    # from, has a shape of its own, and the command takes its preset from that checkpoint.
    if start_step:
        command += argv(TrainConfig, resume=True)  # the model continues; a starter only seeds a new one
    elif init:
        command += argv(TrainConfig, init=STARTERS / init)
        label += f" from {init}"
    else:
        command += argv(TrainConfig, preset=preset)
    job_id = studio.start("train", label, [command], target=target, batch_size=batch_size)
    return JSONResponse({"job": job_id})


async def start_convert(request: Request) -> JSONResponse:
    studio = _studio(request)
    root = studio.root
    body = await _body(request)
    slot, _, name = str(body.get("video", "")).partition("/")
    check_slot(slot)
    source = inside(root, f"footage/{slot}/{name}")
    is_video = source.suffix.lower() in VIDEO_EXTENSIONS
    if source.parent != root / "footage" / slot or not source.is_file() or not is_video:
        raise RequestError(f"footage/{slot}/{name}: no such uploaded video")
    if not has_model(root):
        raise RequestError("no trained model yet: train first")
    names = read_names(root)
    to = names["b" if slot == "a" else "a"]
    # The name made readable, and a hash of the name itself: my.clip.mpg and my_clip.mpg read alike, and
    # must not share (overwrite) one output and one original.
    base = f"{slot}-{name.replace('.', '_')}-{hashlib.sha1(f'{slot}/{name}'.encode()).hexdigest()[:8]}"
    output, original = f"convert/{base}-to-{to}.mp4", f"convert/{base}-original.mp4"
    commands = []
    if not (root / original).exists():
        commands.append([sys.executable, "-m", "dualface.ui.media", f"footage/{slot}/{name}", original])
    words = argv(ConvertConfig, model="model", to=to, output=output)
    commands.append(jobs.dualface_command("convert", f"footage/{slot}/{name}", *words))
    job_id = studio.start(
        "convert", f"convert {name} ({names[slot]}) to {to}", commands,
        source=f"footage/{slot}/{name}", output=output, original=original, to=to,
    )  # fmt: skip
    return JSONResponse({"job": job_id})


async def start_evaluate(request: Request) -> JSONResponse:
    studio = _studio(request)
    root = studio.root
    body = await _body(request)
    embed_frames = _option_int(body, EvaluateConfig, "embed_frames")
    conversion = jobs.load(root, str(body.get("conversion", "")))
    if conversion.kind != "convert" or not (root / conversion.params["output"]).is_file():
        raise RequestError(f"job {conversion.id} made no video to evaluate")
    p = conversion.params
    words = argv(EvaluateConfig, model="model", to=p["to"], embed_frames=embed_frames)
    command = jobs.dualface_command("evaluate", p["source"], p["output"], *words)
    job_id = studio.start("evaluate", f"evaluate {Path(p['output']).name}", [command], conversion=conversion.id)
    return JSONResponse({"job": job_id})


def job_log(request: Request) -> PlainTextResponse:
    return PlainTextResponse(jobs.log_tail(_studio(request).root, request.path_params["job"]))


def cancel_job(request: Request) -> JSONResponse:
    studio = _studio(request)
    jobs.cancel(studio.root, request.path_params["job"], studio.processes)
    return JSONResponse({"cancelling": request.path_params["job"]})


async def _body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise RequestError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def _bounds(config: type, name: str) -> tuple[int, int | None]:
    """The whole numbers an option allows (no upper bound: None), for the form's inputs and their checks."""
    opt = find(config, name)[1]
    low = opt.low if opt.low is not None else (math.floor(opt.above) + 1 if opt.above is not None else 0)
    high = opt.high if opt.high is not None else (math.ceil(opt.below) - 1 if opt.below is not None else None)
    return int(low), None if high is None else int(high)


def _option_int(body: dict, config: type, name: str, fallback: int | None = None) -> int:
    """A whole number from the form, within the bounds the option declares (its default if absent)."""
    return _int(body, name, default(config, name) if fallback is None else fallback, *_bounds(config, name))


def _int(body: dict, key: str, default: int, low: int, high: int | None) -> int:
    value = body.get(key, default)
    # A form's field is a string of digits, and JSON's 5.0 is 5; but its true and 1.7 are no whole numbers
    # (int() would take both as 1), nor is 1e999 (infinity: int() raises OverflowError).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = None
    if isinstance(value, int | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):  # not digits, or more of them than Python converts
            number = int(value)
    if number is None:
        raise RequestError(f"{key} must be a whole number, not {value!r}")
    if number < low or (high is not None and number > high):
        allowed = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RequestError(f"{key} must be {allowed}, not {number}")
    return number


# ---------------------------------------------------------------------------------------------------------
# the app


def _error(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=getattr(error, "status", 400))


class _RequireHeader:
    """Refuse POSTs without the X-Dualface header (see the module docstring: cross-site requests)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        changes = scope["type"] == "http" and scope["method"] not in ("GET", "HEAD")
        if changes and not any(name == b"x-dualface" for name, _ in scope["headers"]):
            response = JSONResponse({"error": "requests that change things need the X-Dualface header"}, 403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(workspace: Path, max_upload_mb: int = 500) -> Starlette:
    """The web UI's ASGI app over `workspace` (created with its layout if missing)."""
    if max_upload_mb < 1:
        raise DualfaceError(f"max upload must be at least 1 MB, not {max_upload_mb}")
    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/names", set_names, methods=["POST"]),
        Route("/api/upload/{slot}", upload, methods=["POST"]),
        Route("/api/faces/{slot}/{name}/drop", drop, methods=["POST"]),
        Route("/api/extract", start_extract, methods=["POST"]),
        Route("/api/train", start_train, methods=["POST"]),
        Route("/api/convert", start_convert, methods=["POST"]),
        Route("/api/evaluate", start_evaluate, methods=["POST"]),
        Route("/api/jobs/{job}/log", job_log),
        Route("/api/jobs/{job}/cancel", cancel_job, methods=["POST"]),
        Route("/files/{path:path}", files),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_RequireHeader)], exception_handlers={DualfaceError: _error})
    if not STARTERS.is_dir():  # an installed package has no repository around it
        log.warning("no starter weights: %s does not exist, so new models start from random weights", STARTERS)
    app.state.studio = Studio(init_workspace(workspace), max_upload_mb)
    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    workspace: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: int = 500,
    allowed_hosts: list[str] | None = None,
) -> None:
    """Run the web UI until Ctrl-C. Jobs it started keep running after it stops.

    `allowed_hosts`: the names the server may be addressed by besides localhost (e.g. the machine's name or
    address when listening beyond loopback); other Host headers are refused."""
    import uvicorn

    app = create_app(workspace, max_upload_mb)
    served: ASGIApp = app
    names = ["localhost", "127.0.0.1", "[::1]", host, *(allowed_hosts or [])]
    if _loopback(host) or allowed_hosts:
        # Only requests addressed to this machine by name: a web page whose domain an attacker re-points
        # at 127.0.0.1 (DNS rebinding) sends its own Host header and is refused.
        served = TrustedHostMiddleware(app, allowed_hosts=names)
    if not _loopback(host):
        print(
            f"warning: listening on {host}, not on this machine only: anyone who can reach port {port} can see "
            "the workspace's files and run jobs (there is no login)"
            + ("" if allowed_hosts else "; pass --allowed-host NAME to refuse requests addressed to other names")
        )
    shown = f"[{host}]" if ":" in host else host
    print(f"dualface studio on http://{shown}:{port}/ (workspace {app.state.studio.root}); Ctrl-C stops it")
    uvicorn.run(served, host=host, port=port, log_level="warning")
