import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import S1, S1_CLIPS, write_video
from dualface.align import cut, transform_points
from dualface.alignments import encode_face_png, load_alignments, read_face_png, read_face_record
from dualface.config import CUT, SAME_PERSON, ExtractConfig
from dualface.data import load_face_set
from dualface.errors import DualfaceError
from dualface.extract import extract
from dualface.model import ModelConfig
from dualface.video import probe_video, read_image, read_video


def run(inputs, output, **settings):
    return extract(ExtractConfig(inputs=list(inputs), output=output, progress=False, **settings))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    return out, run([S1], out)


def test_a_clip_gives_a_face_per_frame_and_an_alignments_file(extracted):
    out, summary = extracted
    (item,) = summary.inputs
    assert (item.frames_read, item.frames_with_face, item.faces_written, item.error) == (75, 75, 75, None)
    data = load_alignments(out / f"{S1.stem}.alignments.json")
    assert data["complete"] and data["frames_read"] == 75 and data["source"]["fps"] == 25.0
    assert [f["index"] for f in data["frames"]] == list(range(75))
    assert len(list(out.glob("*.png"))) == 75


def test_face_records_are_complete_and_consistent(extracted):
    out, _ = extracted
    data = load_alignments(out / f"{S1.stem}.alignments.json")
    face = data["frames"][30]["faces"][0]
    assert np.array(face["landmarks"]).shape == (68, 2) and np.array(face["matrix"]).shape == (2, 3)
    assert len(face["embedding"]) == 128 and face["embedding_frame"] == 0
    assert face["blur"] > 0 and face["score"] > 0 and len(face["box"]) == 4
    image, record = read_face_png(out / face["png"])
    assert image.shape == (256, 256, 3)
    assert record["frame"] == 30 and record["source"] == data["source"]["path"]
    assert record["landmarks"] == face["landmarks"] and record["matrix"] == face["matrix"]
    aligned = transform_points(np.array(face["landmarks"]), np.array(face["matrix"], np.float32))
    assert aligned.min() > 0 and aligned.max() < 256  # the face lies inside its crop


def test_embeddings_say_who_it_is(extracted, tmp_path):
    out, _ = extracted
    ours = np.array(read_face_record(out / f"{S1.stem}_000000_0.png")["embedding"])
    again = run([S1_CLIPS[1]], tmp_path)
    other = load_alignments(tmp_path / f"{S1_CLIPS[1].stem}.alignments.json")["frames"][0]["faces"][0]
    assert np.linalg.norm(ours - np.array(other["embedding"])) < SAME_PERSON
    assert again.inputs[0].faces_written == 75


def test_rerun_skips_finished_input_and_keeps_hand_deleted_faces_deleted(tmp_path):
    run([S1], tmp_path, every=5)
    (tmp_path / f"{S1.stem}_000010_0.png").unlink()
    summary = run([S1], tmp_path, every=5)
    assert summary.inputs[0].skipped
    assert not (tmp_path / f"{S1.stem}_000010_0.png").exists()


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    run([S1], tmp_path, every=3)
    path = tmp_path / f"{S1.stem}.alignments.json"
    data = json.loads(path.read_text())
    # The state an interruption after frame 29 leaves behind (the periodic save writes exactly this).
    data["complete"], data["frames_read"] = False, 30
    data["frames"] = [f for f in data["frames"] if f["index"] < 30]
    path.write_text(json.dumps(data))
    for png in tmp_path.glob("*.png"):
        if read_face_record(png)["frame"] >= 30:
            png.unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.png")}
    summary = run([S1], tmp_path, every=3)
    assert summary.inputs[0].faces_written == 25
    assert all((tmp_path / name).stat().st_mtime_ns == ns for name, ns in kept.items())  # not redone
    assert [f["index"] for f in load_alignments(path)["frames"]] == list(range(0, 75, 3))


def test_other_settings_need_overwrite(tmp_path):
    run([S1], tmp_path, every=25)
    summary = run([S1], tmp_path, every=25, size=128)
    assert "other settings (size)" in summary.errors[0]
    summary = run([S1], tmp_path, every=25, size=128, overwrite=True)
    assert not summary.errors and read_face_png(tmp_path / f"{S1.stem}_000000_0.png")[0].shape == (128, 128, 3)


def test_stills_share_one_alignments_file(tmp_path, stills):
    summary = run([stills], tmp_path / "out")
    assert summary.total("faces_written") == 4
    data = load_alignments(tmp_path / "out" / "stills.alignments.json")
    assert data["source"]["kind"] == "images" and [f["file"] for f in data["frames"]][:2] == ["s1_0.png", "s1_1.jpg"]


def test_an_hd_face_is_extracted_averaged_not_aliased(tmp_path, s1_frames, caplog):
    # A face larger than the crop shrinks into it: under stripes one pixel wide (above the crop's Nyquist
    # frequency) the extracted face must be the stripe-free face's, not a moire. The plain warp of dualface
    # before 2026-11-24 left 15 levels of the +-30, the bilinear warp and box average after it about 2;
    # the Lanczos filter leaves a fraction of one.
    big = cv2.resize(s1_frames[10], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    stripes = np.where(np.arange(big.shape[1]) % 2, 30, -30)[None, :, None]
    folder = tmp_path / "hd"
    folder.mkdir()
    Image.fromarray(np.clip(big.astype(int) + stripes, 0, 255).astype(np.uint8)).save(folder / "striped.png")
    run([folder], tmp_path / "out")
    (path,) = (tmp_path / "out").glob("*.png")
    face, record = read_face_png(path)
    clean = cut(big, np.array(record["matrix"], np.float32), face.shape[0])
    assert np.linalg.det(np.array(record["matrix"])[:, :2]) < 0.5**2  # it did shrink
    assert np.abs(face.astype(int) - clean).mean() < 1
    # Face folders from before the fixes (no record: maybe aliased; "area": blurred) are still loaded, with a
    # warning to extract them again.
    assert record["cut"] == CUT
    for name, older in (("none", {k: v for k, v in record.items() if k != "cut"}), ("area", {**record, "cut": "area"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / path.name).write_bytes(encode_face_png(face, older))
    with caplog.at_level(logging.WARNING, logger="dualface.data"):
        load_face_set(tmp_path / "out", ModelConfig())
        assert not caplog.records
        assert len(load_face_set(tmp_path / "none", ModelConfig()).faces) == 1
        assert len(load_face_set(tmp_path / "area", ModelConfig()).faces) == 1
    assert caplog.text.count("1 faces larger than the crop were cut by an older dualface") == 2


def test_reference_keeps_only_that_person(tmp_path, s1_frames, other_frames):
    """Two people side by side in every frame; a photo of s1 picks s1 (on the left)."""
    pair = [np.ascontiguousarray(np.hstack([a, b])) for a, b in zip(s1_frames[:10], other_frames[:10], strict=True)]
    video = write_video(tmp_path / "pair.mp4", pair)
    Image.fromarray(s1_frames[60]).save(tmp_path / "ref.jpg")
    everyone = run([video], tmp_path / "all")
    assert everyone.total("faces_written") == 20
    chosen = run([video], tmp_path / "s1", references=[tmp_path / "ref.jpg"])
    assert chosen.total("faces_written") == 10
    data = load_alignments(tmp_path / "s1" / "pair.alignments.json")
    assert all(np.mean(np.array(f["faces"][0]["landmarks"])[:, 0]) < 360 for f in data["frames"])


def test_min_size_filters_small_faces(tmp_path):
    summary = run([S1], tmp_path, every=25, min_size=400)
    assert "no face found" in summary.errors[0]


def test_one_bad_input_among_many_is_reported_and_the_rest_processed(tmp_path, faceless_video):
    fake = tmp_path / "fake.mov"
    fake.write_text("not a video")
    summary = run([fake, faceless_video, tmp_path / "missing.mp4", S1], tmp_path / "out", every=25)
    errors = " | ".join(summary.errors)
    assert "fake.mov: not a readable video" in errors
    assert "backdrop.mp4: no face found in 1 frame(s) searched" in errors  # every 25th of 20 frames
    assert "missing.mp4: no such file" in errors
    assert len(summary.errors) == 3
    assert (tmp_path / "out" / f"{S1.stem}_000025_0.png").exists()


def test_damaged_video_keeps_what_was_extracted(tmp_path, s1_frames):
    data = bytearray(write_video(tmp_path / "whole.mp4", s1_frames[:40]).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    summary = run([tmp_path / "damaged.mp4"], tmp_path / "out")
    assert "damaged.mp4: video is corrupt" in summary.errors[0]
    saved = load_alignments(tmp_path / "out" / "damaged.alignments.json")
    assert saved["complete"] and len(saved["frames"]) == summary.inputs[0].faces_written > 10


def test_config_rejects_bad_values(tmp_path):
    for bad in ({"size": 8}, {"coverage": 2.0}, {"centering": "chin"}, {"detector": "yolo"}, {"every": 0}):
        with pytest.raises(DualfaceError):
            ExtractConfig(inputs=[S1], output=tmp_path, **bad)


def test_output_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DualfaceError, match="is not a folder"):
        run([S1], blocker)
    with pytest.raises(DualfaceError, match="cannot write here"):
        run([S1], blocker / "sub")


def test_cnn_detector_finds_the_face(tmp_path):
    summary = run([S1], tmp_path, detector="cnn", every=25)
    assert summary.total("faces_written") == 3


def test_overwrite_removes_the_earlier_faces_of_that_input(tmp_path):
    run([S1], tmp_path, every=25)
    (tmp_path / "other_000000_0.png").write_bytes(b"another input's face")  # not this input's: kept
    summary = run([S1], tmp_path, every=15, size=128, overwrite=True)
    assert not summary.errors
    written = sorted(p.name for p in tmp_path.glob(f"{S1.stem}_*.png"))
    assert written == [f"{S1.stem}_{i:06d}_0.png" for i in range(0, 75, 15)]  # none of frame 25 or 50 left
    assert {read_face_png(tmp_path / name)[0].shape for name in written} == {(128, 128, 3)}
    assert (tmp_path / "other_000000_0.png").exists()


def test_a_rerun_fails_as_the_first_run_did(tmp_path, faceless_video, s1_frames):
    for _ in range(2):  # the second run skips the finished input, and still says why it gave nothing
        summary = run([faceless_video], tmp_path / "out")
        assert summary.errors and "no face found" in summary.errors[0]
    data = bytearray(write_video(tmp_path / "whole.mp4", s1_frames[:40]).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4000] = bytes(4000)
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    for _ in range(2):
        summary = run([tmp_path / "damaged.mp4"], tmp_path / "out")
        assert summary.errors and "damaged.mp4: video is" in summary.errors[0]


def test_every_thins_a_video_not_a_folder_of_photos(tmp_path, stills):
    summary = run([stills], tmp_path / "out", every=3)
    assert summary.total("faces_written") == 4 and summary.inputs[0].frames_processed == 4


def test_a_folder_with_an_unreadable_photo_keeps_the_rest_and_fails(tmp_path, stills):
    (stills / "broken.jpg").write_text("not an image")
    summary = run([stills], tmp_path / "out")
    assert summary.total("faces_written") == 4
    assert len(summary.errors) == 1 and "broken.jpg: not a readable image" in summary.errors[0]
    assert "\n" not in summary.errors[0]


def test_unusual_images_are_read_as_they_look(tmp_path, s1_frames):
    grey = cv2.cvtColor(s1_frames[0], cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit grey
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert np.abs(read_image(tmp_path / "deep.png")[..., 0].astype(int) - grey).max() <= 1  # not all white
    Image.new("RGB", (2000, 1)).save(tmp_path / "strip.png")  # a row: scaled for the detector, not to nothing
    summary = run([tmp_path / "strip.png"], tmp_path / "out")
    assert "strip.png: no face found" in summary.errors[0]


def test_a_phone_video_is_turned_upright(tmp_path, s1_frames):
    sideways = [np.ascontiguousarray(np.rot90(f, 1)) for f in s1_frames[:10]]  # stored turned a quarter left
    clip = write_video(tmp_path / "phone.mp4", sideways, rotation=-90)  # its display matrix turns it back
    assert probe_video(clip).width == s1_frames[0].shape[1]
    frame = next(read_video(clip))[1]
    assert frame.shape == s1_frames[0].shape and np.abs(frame.astype(int) - s1_frames[0]).mean() < 6
    assert run([clip], tmp_path / "out").total("faces_written") == 10


def test_a_damaged_alignments_file_is_named(tmp_path):
    run([S1], tmp_path, every=25)
    path = tmp_path / f"{S1.stem}.alignments.json"
    data = json.loads(path.read_text())
    del data["source"]
    path.write_text(json.dumps(data))
    summary = run([S1], tmp_path, every=25)
    assert summary.errors == [f"{path}: alignments file is damaged (no valid source)"]


def test_extract_of_the_current_folder_names_it(tmp_path, stills, monkeypatch):
    monkeypatch.chdir(stills)
    run([Path(".")], tmp_path / "out")
    assert (tmp_path / "out" / "stills.alignments.json").exists()
