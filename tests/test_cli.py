"""The installed command, run as a user runs it."""

import subprocess
import sys

from conftest import S1


def dualface(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dualface", *args], capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and all(w in errors[0] for w in words), result.stderr


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
        "unknown preset",
    )
    one_line_error(
        dualface("train", str(tmp_path / "empty"), str(tmp_path / "other"), "-m", model, "--time", "soon"), "duration"
    )
