"""The installed command, run as a user runs it."""

import os
import subprocess
import sys

import pytest

from conftest import S1, dualface, one_line_error
from dualface import cli
from dualface.config import STAGES, ConvertConfig, PasteConfig, TrainConfig
from dualface.errors import DualfaceError
from dualface.options import argv, choices, flag
from dualface.presets import MODEL_PRESETS


def test_help_lists_the_stages():
    result = dualface("--help")
    assert result.returncode == 0 and "extract" in result.stdout
    assert "--reference" in dualface("extract", "--help").stdout


def test_extract_prints_a_summary(tmp_path):
    result = dualface("extract", str(S1), "-o", str(tmp_path), "--every", "15")
    assert result.returncode == 0, result.stderr
    assert "75 frames read, 5 searched, 5 faces, 0 frames without a face" in result.stdout
    rerun = dualface("extract", str(S1), "-o", str(tmp_path), "--every", "15")
    assert "already extracted" in rerun.stdout


def test_bad_inputs_exit_nonzero_with_one_line(tmp_path, faceless_video):
    one_line_error(dualface("extract", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o")), "nope.mp4", "no such")
    (tmp_path / "text.mp4").write_text("plain text")
    one_line_error(dualface("extract", str(tmp_path / "text.mp4"), "-o", str(tmp_path / "o")), "text.mp4", "video")
    one_line_error(dualface("extract", str(faceless_video), "-o", str(tmp_path / "o")), "backdrop.mp4", "no face")
    (tmp_path / "f").write_text("x")
    one_line_error(dualface("extract", str(S1), "-o", str(tmp_path / "f" / "o")), "cannot write")
    one_line_error(dualface("extract", str(S1), "-o", str(tmp_path / "o"), "--size", "4"), "--size")


def test_train_bad_inputs_exit_nonzero_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    model = str(tmp_path / "m")
    one_line_error(dualface("train", str(tmp_path / "missing"), str(tmp_path / "other"), "-m", model), "no such")
    one_line_error(dualface("train", str(tmp_path / "empty"), str(tmp_path / "other"), "-m", model), "no face PNGs")
    one_line_error(dualface("train", str(tmp_path / "empty"), "-m", model), "two or more")
    one_line_error(
        dualface("train", str(tmp_path / "empty"), str(tmp_path / "other"), "-m", model, "--resume"),
        "holds no checkpoint",
    )
    one_line_error(
        dualface("train", str(tmp_path / "empty"), str(tmp_path / "other"), "-m", model, "--preset", "xl"),
        "--preset must be one of",
    )
    one_line_error(
        dualface("train", str(tmp_path / "empty"), str(tmp_path / "other"), "-m", model, "--time", "soon"), "duration"
    )
    folders = [str(tmp_path / "empty"), str(tmp_path / "other"), "-m", model]
    one_line_error(dualface("train", *folders, "--device", "gpu"), "--device gpu", "not a device")
    one_line_error(dualface("train", *folders, "--device", "mps"), "--device mps", "cpu or cuda")
    one_line_error(
        dualface("train", *folders, "--eval-every", "1", "--held-out", f"nobody={tmp_path}"),
        "--held-out nobody",
        "empty",
    )
    one_line_error(dualface("train", *folders, "--held-out", f"s1={tmp_path}"), "--held-out", "needs --eval-every")
    one_line_error(dualface("train", *folders, "--init", str(tmp_path / "other")), "other", "holds no checkpoint")


def test_help_verify_and_ui_start_without_torch():
    for args in (["--help"], ["train", "--help"], ["convert", "--help"], ["verify", "--help"], ["ui", "--help"]):
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "dualface", *args], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        assert not [line for line in run.stderr.splitlines() if line.rstrip().endswith("| torch")], args


def test_the_command_line_is_built_from_the_configs():
    """Every option a config declares for the command line is there, with its choices from the table it names;
    one out of bounds is refused by the config with the flag's name, from Python and from the command line."""
    wide = {**os.environ, "COLUMNS": "250"}
    for name, config in STAGES.items():
        command = [sys.executable, "-m", "dualface", name, "--help"]
        text = subprocess.run(command, capture_output=True, text=True, env=wide)
        for path, field, opt in cli._fields(config):
            shown = path[-1].upper() if opt.argument else opt.names(path[-1])[0]
            assert shown in text.stdout, (name, field.name)
    assert choices(TrainConfig, "preset") == list(MODEL_PRESETS)
    assert argv(TrainConfig, names=["a", "b"], batch_size=8, resume=True) == [
        "--name", "a", "--name", "b", "--batch-size", "8", "--resume",
    ]  # fmt: skip
    assert flag(ConvertConfig, "from_identity") == "--from" and flag(ConvertConfig, "feather") == "--feather"
    with pytest.raises(DualfaceError, match="--feather must be at least 0 and below 50, not 60"):
        PasteConfig(feather=60)
    one_line_error(dualface("convert", str(S1), "-m", ".", "--to", "x", "-o", "o.mp4", "--feather", "60"), "--feather")
