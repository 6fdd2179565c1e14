"""Conversion on the bundled footage with a (barely) trained model: every frame out, the sound kept, the
face replaced and nothing else, the mark on every frame, and bad input refused without losing a file."""

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import OTHER, S1, dualface, one_line_error, write_video
from dualface.align import transform_points
from dualface.alignments import load_alignments
from dualface.checkpoint import save_checkpoint
from dualface.color import COLOR_TRANSFERS, transfer_color
from dualface.composite import MASK_SIZE, Face, face_mask, model_input, sharpen
from dualface.config import ConvertConfig, EvaluateConfig, ExtractConfig, PasteConfig
from dualface.convert import convert
from dualface.errors import DualfaceError
from dualface.evaluate import evaluate, flicker, recorded_conversion
from dualface.extract import extract
from dualface.masks import hair, hull_in_frame, hull_mask
from dualface.provenance import SYNTHETIC_NOTICE
from dualface.video import read_video
from dualface.watermark import MAX_BIT_ERRORS, embed_watermark, read_watermark, verify
from dualface.writer import aac_settings, frame_pts, video_writer, write_image


def run(model: Path, clip: Path, output: Path, **settings):
    return convert(ConvertConfig(input=clip, model=model, output=output, to="brbk7n", progress=False, **settings))


def frames(path: Path) -> list[np.ndarray]:
    return [frame for _, frame in read_video(path)]


@pytest.fixture(scope="module")
def s1_landmarks(tmp_path_factory) -> dict[int, np.ndarray]:
    out = tmp_path_factory.mktemp("s1faces")
    extract(ExtractConfig(inputs=[S1], output=out, progress=False))
    alignments = load_alignments(out / f"{S1.stem}.alignments.json")
    return {e["index"]: np.array(e["faces"][0]["landmarks"]) for e in alignments["frames"]}


@pytest.fixture(scope="module")
def converted(tiny_model, tmp_path_factory) -> tuple[Path, object]:
    output = tmp_path_factory.mktemp("converted") / "swap.mp4"
    return output, run(tiny_model, S1, output)


def test_video_keeps_every_frame_its_rate_and_its_sound(converted):
    output, summary = converted
    assert summary.frames == summary.frames_swapped == summary.faces_swapped == 75
    with av.open(str(S1)) as src, av.open(str(output)) as out:
        v_in, v_out = src.streams.video[0], out.streams.video[0]
        assert (v_out.width, v_out.height, v_out.average_rate) == (v_in.width, v_in.height, v_in.average_rate)
        assert v_out.codec_context.name == "h264"
        a_in, a_out = src.streams.audio[0], out.streams.audio[0]
        samples_in = sum(f.samples for f in src.decode(a_in))
        samples_out = sum(f.samples for f in out.decode(a_out))
        assert abs(samples_out - samples_in) < 0.05 * a_in.rate  # within 50 ms of sound, none lost
        assert out.metadata["dualface_synthetic"] == "true" and "Synthetic" in out.metadata["comment"]
        assert out.duration == 3_000_000  # 75 frames at 25 fps, the last one's 40 ms included
    assert len(frames(output)) == 75
    assert np.allclose(frame_times(output), np.arange(75) / 25)


def frame_times(path: Path) -> list[float]:
    """Each frame's presentation time, in seconds from its stream's start."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return [frame.time - start for frame in container.decode(stream)]


def changes(before: list[np.ndarray], after: list[np.ndarray], landmarks: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute change inside the face's hull and well above it (the backdrop), every 5th frame."""
    inside, elsewhere = [], []
    for i in range(0, len(before), 5):
        face = hull_in_frame(landmarks[i], before[i].shape)
        diff = np.abs(before[i].astype(int) - after[i]).mean(2)
        inside.append(diff[face].mean())
        far = np.ones_like(face)
        far[max(0, face.nonzero()[0].min() - 60) :, :] = False
        elsewhere.append(diff[far].mean())
    return np.array(inside), np.array(elsewhere)


def test_only_the_face_changes(converted, s1_landmarks):
    output, _ = converted
    face_change, elsewhere = changes(frames(S1), frames(output), s1_landmarks)
    assert min(face_change) > 8  # a different face is drawn there
    assert max(elsewhere) < 3  # the rest is the source, up to H.264 and the watermark


def test_watermark_survives_the_default_encode(converted):
    output, _ = converted
    report = verify(output, samples=0)
    assert len(report.frames) == 75 and report.found >= 0.9 * 75 and report.marked
    assert "Synthetic" in report.metadata
    unmarked = verify(S1, samples=10)
    assert unmarked.found == 0 and not unmarked.marked and unmarked.metadata == ""


def test_watermark_reads_back_exactly_and_not_where_absent():
    frame = frames(OTHER)[10]
    marked = embed_watermark(frame)
    assert read_watermark(marked) == 0
    assert read_watermark(frame) > MAX_BIT_ERRORS
    assert np.abs(marked.astype(int) - frame).mean() < 3  # invisible: a small, chroma-only change


def test_writer_marks_the_encoders_chroma_through_crf_28_at_720p(tmp_path):
    """The writer puts the mark straight into the I420 picture it encodes: it must read back from the
    decoded file on every frame at a harder compression than the default, and be absent when turned off."""
    big = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_CUBIC) for f in frames(S1)[:8]]
    for mark in (True, False):
        out = tmp_path / f"{mark}.mp4"
        with video_writer(out, S1, crf=28, size=(1280, 720), mark=mark) as write:
            for frame in big:
                write(frame)
        report = verify(out, samples=0)
        assert len(report.frames) == 8 and report.found == (8 if mark else 0)
        decoded = frames(out)
        assert np.abs(decoded[3].astype(int) - big[3]).mean() < 4  # the picture itself is kept


def test_verify_command_exit_codes(converted):
    output, _ = converted
    found = dualface("verify", str(output), "--samples", "5")
    assert found.returncode == 0 and "watermark found on 5/5" in found.stdout
    assert dualface("verify", str(S1), "--samples", "5").returncode == 3


def test_verify_takes_a_small_output_by_its_metadata_and_names_a_folder(tmp_path, s1_frames):
    """Frames under 256 px are too small to carry the mark: dualface's own such outputs carry the metadata
    label alone, and `verify x && ...` must take them (exit 0), saying why; an unlabelled one is not ours."""
    small = [cv2.resize(f, (180, 144), interpolation=cv2.INTER_AREA) for f in s1_frames[:5]]
    with video_writer(tmp_path / "small.mp4", S1, size=(180, 144)) as write:
        for frame in small:
            write(frame)
    write_image(tmp_path / "small.png", small[0])
    for name in ("small.mp4", "small.png"):
        result = dualface("verify", str(tmp_path / name))
        assert result.returncode == 0 and "says the metadata; the watermark cannot be read under 256" in result.stdout
    Image.fromarray(small[0]).save(tmp_path / "holiday.png")
    assert dualface("verify", str(tmp_path / "holiday.png")).returncode == 3
    one_line_error(dualface("verify", str(tmp_path)), str(tmp_path), "a folder, not a video or image file")


def test_alignments_file_gives_the_same_swap(tiny_model, tmp_path):
    extract(ExtractConfig(inputs=[S1], output=tmp_path / "faces", progress=False))
    alignments = tmp_path / "faces" / f"{S1.stem}.alignments.json"
    # Lossless, so that x264's choices (which a 0.005 px rounding of the stored landmarks can flip) don't count.
    summary = run(tiny_model, S1, tmp_path / "again.mp4", alignments=alignments, crf=0)
    assert summary.faces_swapped == 75
    run(tiny_model, S1, tmp_path / "tracked.mp4", crf=0)
    a, b = frames(tmp_path / "tracked.mp4"), frames(tmp_path / "again.mp4")
    assert max(np.abs(x.astype(int) - y).mean() for x, y in zip(a, b, strict=True)) < 0.1


def test_from_swaps_only_that_persons_face(tiny_model, tmp_path, s1_frames, other_frames):
    pair = write_video(
        tmp_path / "pair.mp4", [np.hstack([a, b]) for a, b in zip(s1_frames[:12], other_frames[:12], strict=True)]
    )
    summary = run(tiny_model, pair, tmp_path / "out.mp4", from_identity="s1")
    assert summary.faces_swapped == 12 and summary.faces_skipped == 12
    before, after = frames(pair), frames(tmp_path / "out.mp4")
    width = s1_frames[0].shape[1]
    face = (slice(80, 200), slice(120, 240))  # the middle of each speaker's face in its half
    for x, y in zip(before, after, strict=True):
        change = np.abs(x.astype(int) - y)
        left, right = (
            change[face[0], face[1]].mean(),
            change[face[0], width + face[1].start : width + face[1].stop].mean(),
        )
        assert left > 8 and right < 3  # re-encoding and the mark alone change a face by ~1-2


def test_images_give_labelled_marked_images(tiny_model, tmp_path, stills):
    run(tiny_model, stills / "s1_0.png", tmp_path / "one.png")
    with Image.open(tmp_path / "one.png") as image:
        assert image.text["dualface:synthetic"] == "true"
    assert verify(tmp_path / "one.png").marked
    summary = run(tiny_model, stills, tmp_path / "many")
    assert summary.faces_swapped == 4 and sorted(p.name for p in (tmp_path / "many").iterdir()) == [
        f"s1_{i}.png" for i in range(4)
    ]


def test_smoothing_off_and_other_options_run(tiny_model, tmp_path):
    for paste in (PasteConfig(smooth=False, color="avg"), PasteConfig(blend="poisson", mask="hull", color="hist")):
        summary = run(tiny_model, S1, tmp_path / "o.mkv", paste=paste)
        assert summary.faces_swapped == 75 and verify(tmp_path / "o.mkv", samples=3).marked


def test_sharpen_is_an_unsharp_mask_at_the_models_size(s1_frames, s1_landmarks):
    """A real face, sharpened by 1: its finest detail gains contrast (Laplacian variance 2-4.5x: the
    finest octave doubled, the coarser ones less), its coarse shape and colour stay, its range stays [0, 1]."""
    _, crop = model_input(s1_frames[10], s1_landmarks[10], 128, 0.6, "face")
    face = crop.astype(np.float32) / 255
    assert sharpen(face, 0.0) is face
    out = sharpen(face, 1.0)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    detail = [cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var() for f in (face, out)]
    assert 2 < detail[1] / detail[0] < 4.5
    assert np.abs(cv2.GaussianBlur(out, (0, 0), 4) - cv2.GaussianBlur(face, (0, 0), 4)).mean() < 0.01


def test_sharpen_changes_the_face_only_and_is_recorded(tiny_model, s1_landmarks, face_dirs, tmp_path):
    """`--sharpen` touches the pasted face, and is recorded: evaluate pastes its static-swap
    floor the same way and does not credit the sharpness an unsharp mask added."""
    # Both encoded losslessly: the tiny model's soft face gains about a grey level, which at the default
    # CRF is no more than H.264 shifts the backdrop when it re-decides its blocks (an Intel Xeon: 0.94 / 0.96).
    plain, output = tmp_path / "plain.mp4", tmp_path / "sharp.mp4"
    run(tiny_model, S1, plain, crf=0)
    run(tiny_model, S1, output, crf=0, paste=PasteConfig(sharpen=1.0))
    assert recorded_conversion(output)["paste"]["sharpen"] == 1.0
    inside, elsewhere = changes(frames(plain), frames(output), s1_landmarks)
    # the same conversion twice changes nothing anywhere; sharpened, the face's edges gain about half a level
    assert max(elsewhere) < 0.05 and np.median(inside) > 0.25
    config = EvaluateConfig(S1, output, tiny_model, "brbk7n", target_faces=face_dirs[1], embed_frames=5,
                            report=tmp_path / "report", progress=False)  # fmt: skip
    ev, html = evaluate(config)
    assert ev.paste["sharpen"] == 1.0 and ev.scores["sharpness"].value is not None
    assert ev.scores["sharpness"].not_credited and "sharpness" in ev.failed
    assert "--sharpen 1" in html.read_text()


def test_bf16_channels_last_draws_what_fp32_draws(s1_frames, s1_landmarks):
    """`--precision auto` draws in bf16 where the CPU has it: the faces must not change visibly."""
    from dualface.checkpoint import load_checkpoint, model_from
    from dualface.composite import model_input
    from dualface.model import draw

    model = model_from(load_checkpoint(Path(__file__).parents[1] / "models" / "starter-lite-grid.safetensors"))
    cfg = model.config
    crops = np.stack([model_input(s1_frames[i], s1_landmarks[i], cfg.size, cfg.coverage, cfg.centering)[1]
                      for i in range(0, 75, 10)])  # fmt: skip
    exact, _ = draw(model, crops, "brbk7n")
    fast, _ = draw(model.to(memory_format=torch.channels_last), crops, "brbk7n", dtype=torch.bfloat16)
    levels = np.abs(fast - exact) * 255
    assert levels.mean() < 0.5 and levels.max() < 4, (levels.mean(), levels.max())
    assert np.abs(exact - exact.mean(0)).mean() * 255 > 2  # the frames differ more than the formats do


def test_hair_over_the_temple_is_left_out_of_the_paste(s1_frames, s1_landmarks):
    """A real face drawn with a strand of brown hair down its temple (at lite128's crop the forehead is off
    the top), and the same brown as a beard on its chin: the strand is found and left out of the paste's
    mask; the skin, brows, eyes and the beard are not."""
    size = 128
    rng = np.random.default_rng(0)
    matrix, crop = model_input(s1_frames[10], s1_landmarks[10], size, 0.9, "face")
    points = transform_points(s1_landmarks[10], matrix)
    face = crop.astype(np.float32) / 255
    assert hair(face, points)[hull_mask(points, size) > 0].mean() < 0.01  # the bare face: nothing
    brown = np.array([0.25, 0.17, 0.1], np.float32)
    drawn = face.copy()
    strand, beard = np.zeros((size, size), bool), np.zeros((size, size), bool)
    left = int(points[[0, 1, 2], 0].max()) + 1  # inside the jaw line, from its top to the eye line's low side
    strand[int(points[0, 1]) : int(points[2, 1]), left : left + 6] = True
    chin = int(points[57, 1])
    beard[chin + 3 : chin + 10, int(points[6, 0]) : int(points[10, 0])] = True
    for where in (strand, beard):
        drawn[where] = np.clip(brown + rng.normal(0, 0.03, (where.sum(), 3)), 0, 1)
    found = hair(drawn, points)
    core = cv2.erode(strand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert found[core].mean() > 0.9
    assert found[beard].max() == 0
    skin = (hull_mask(points, size) > 0) & ~(cv2.dilate(strand.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
    assert found[skin].mean() < 0.01
    # and the paste's mask: the strand's pixels left out, as much of the rest kept as without the check
    placed = Face(0, s1_landmarks[10], matrix, crop, swapped=drawn)
    kept, plain = face_mask(placed, PasteConfig(), size), face_mask(placed, PasteConfig(hair=False), size)
    at = cv2.resize(core.astype(np.uint8), (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_NEAREST) > 0
    assert plain[at].mean() > 0.5 and kept[at].mean() < 0.25 * plain[at].mean(), (plain[at].mean(), kept[at].mean())
    assert kept.sum() > 0.85 * plain.sum()


def test_a_grown_mask_is_feathered_at_the_crop_edge_too(s1_frames, s1_landmarks):
    """At lite128's crop the forehead runs off the crop's top: a mask grown past it (--erode -2) must fade
    at the edge as the default's does (to a quarter), not end in a hard line across the forehead."""
    size = 128
    matrix, crop = model_input(s1_frames[10], s1_landmarks[10], size, 0.9, "face")
    face = Face(0, s1_landmarks[10], matrix, crop, swapped=crop.astype(np.float32) / 255)
    for erode in (0, -2, -4):
        mask = face_mask(face, PasteConfig(erode=erode, hair=False), size)
        assert mask[0].max() < 0.3, erode  # the top edge: 1.0 before growing was closed after it
        assert mask[MASK_SIZE // 2, MASK_SIZE // 2] > 0.99
    grown, plain = (
        face_mask(face, PasteConfig(erode=-4, hair=False), size),
        face_mask(face, PasteConfig(hair=False), size),
    )
    assert grown.sum() > 1.05 * plain.sum()


def test_color_transfers_match_the_reference():
    source, target = frames(S1)[0][40:200, 100:260], frames(OTHER)[0][40:200, 100:260]
    image, reference = source.astype(np.float32) / 255, target.astype(np.float32) / 255
    mask = np.ones(image.shape[:2], np.float32)
    for name, method in COLOR_TRANSFERS.items():
        out = transfer_color(name, image, reference, mask)
        if method is None:
            assert out is image
            continue
        matched = slice(0, 4) if name == "skin" else slice(None)  # skin: lightness and the a/b means, by design
        before = np.abs(method.stats(image, mask) - method.stats(reference, mask))[matched].mean()
        after = np.abs(method.stats(out, mask) - method.stats(reference, mask))[matched].mean()
        assert after < 0.25 * before, name


def test_default_color_transfer_keeps_a_darker_skins_shadows():
    """A pale face recoloured to a darker skin (the same face with its Lab lightness scaled, as albedo is,
    and warmer) must keep its shadows dark and untinted. A mean shift in RGB subtracts, clips the eye
    sockets in some channels and tints them: the purple eyes of Obama -> s1."""
    image = frames(S1)[0][40:200, 100:260].astype(np.float32) / 255
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 0] *= 0.55
    lab[..., 1:] += (6, 10)
    darker = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0, 1)
    mask = np.ones(image.shape[:2], np.float32)
    lightness = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0]
    shadows = lightness < np.percentile(lightness, 10)

    def shadow_error(name: str) -> float:
        out = cv2.cvtColor(transfer_color(name, image, darker, mask), cv2.COLOR_RGB2LAB)
        return float(np.linalg.norm(out[shadows] - cv2.cvtColor(darker, cv2.COLOR_RGB2LAB)[shadows], axis=-1).mean())

    assert shadow_error(PasteConfig().color) < 3.0  # CIE76
    assert shadow_error("avg") > shadow_error("none")  # the mean shift: worse than no transfer at all


def test_skin_transfer_keeps_grey_grey():
    """Recoloured to a warmer, redder skin, a face's grey parts (an eye's white, a dark brow) must stay grey
    and its dark brown ones (a moustache) nearly so under `skin`, while its skin takes the new colour; `rct`
    paints them all with the skins' difference."""
    image = frames(S1)[0][100:260, 100:260].astype(np.float32) / 255  # s1's face, his eyes at row 60
    white, brow, brown = np.s_[57:63, 24:38], np.s_[46:50, 18:44], np.s_[104:108, 45:75]
    image[white], image[brow] = 0.8, 0.15
    image[brown] = cv2.cvtColor(np.full((4, 30, 3), (25, 2, 3), np.float32), cv2.COLOR_LAB2RGB)  # chroma 3.6
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 1:] += (8, 6)
    warmer = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0, 1)
    mask = np.zeros(image.shape[:2], np.float32)
    mask[35:135, 15:105] = 1  # the face, no background

    def ab(name: str) -> np.ndarray:
        return cv2.cvtColor(transfer_color(name, image, warmer, mask), cv2.COLOR_RGB2LAB)[..., 1:]

    before, skin, rct = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 1:], ab("skin"), ab("rct")
    grey = np.concatenate([skin[white].reshape(-1, 2), skin[brow].reshape(-1, 2)])
    assert np.hypot(*grey.T).mean() < 1.0
    shift = {k: np.linalg.norm((v[brown] - before[brown]).mean((0, 1))) for k, v in (("skin", skin), ("rct", rct))}
    assert shift["skin"] < 0.3 * shift["rct"], shift
    moved = np.linalg.norm((skin - before)[mask > 0].mean(0))
    assert moved > 8, moved  # the face took most of the 10 it was asked to
    assert np.hypot(*rct[white].reshape(-1, 2).T).mean() > 6  # the shift tints the grey


def test_mkl_gives_the_references_chroma_for_each_lightness():
    """A face whose darker parts are warmer (the creases of a dark skin), recoloured to one whose chroma does
    not change with lightness (a pale skin): under `mkl` its creases take the reference's colour, under
    `rct` they keep their own warmth against the cheeks and read as orange streaks."""
    image = frames(S1)[0][100:260, 100:260].astype(np.float32) / 255
    mask = np.ones(image.shape[:2], np.float32)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    pale = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0, 1)
    darkness = lab[..., 0].mean() - lab[..., 0]
    lab[..., 1:] += 0.6 * darkness[..., None]  # the darker, the redder and yellower
    warm_creases = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0, 1)

    def lightness_chroma(image: np.ndarray) -> float:  # covariance of lightness with a + b
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).reshape(-1, 3)
        return float(np.cov(lab[:, 0], lab[:, 1] + lab[:, 2])[0, 1])

    wanted = lightness_chroma(pale)
    mkl, rct = (lightness_chroma(transfer_color(c, warm_creases, pale, mask)) for c in ("mkl", "rct"))
    assert abs(mkl - wanted) < 0.2 * abs(lightness_chroma(warm_creases) - wanted), (mkl, wanted)
    assert abs(rct - wanted) > 3 * abs(mkl - wanted), (rct, mkl, wanted)


def test_flicker_counts_changes_between_frames_that_both_show_a_face(s1_landmarks):
    source = frames(S1)[:20]
    regions = [hull_in_frame(s1_landmarks[i], source[i].shape) for i in range(20)]
    base = flicker(source, regions)
    assert base > 0
    assert flicker([source[0]] * 20, regions) == 0.0
    cut = list(source)
    cut[10] = 255 - cut[10]  # one frame inverted: two large changes
    assert flicker(cut, regions) > 3 * base
    hidden = list(regions)
    hidden[10] = None  # that frame shows no face: the changes into and out of it are not counted
    assert flicker(cut, hidden) == pytest.approx(flicker(source, hidden))
    noise = np.random.default_rng(0).integers(-20, 21, source[0].shape)
    shimmer = [np.clip(f.astype(int) + (noise if i % 2 else 0), 0, 255).astype(np.uint8) for i, f in enumerate(source)]
    assert flicker(shimmer, regions) > 2 * base


def test_bad_input_is_refused_and_nothing_is_overwritten(tiny_model, tmp_path, faceless_video, s1_frames):
    good = tmp_path / "good.mp4"
    good.write_bytes(b"an earlier good output")
    empty = tmp_path / "empty_model"
    empty.mkdir()
    cases = [
        ({"model": empty}, "holds no checkpoint"),
        ({"to": "carol"}, "--to 'carol'"),
        ({"from_identity": "carol"}, "--from 'carol'"),
        ({"from_identity": "brbk7n"}, "nothing would change"),
        ({"input": faceless_video}, "no face"),
        ({"input": good}, "must not be the input"),
        ({"input": tmp_path / "missing.mp4"}, "no such file"),
    ]
    for settings, words in cases:
        config = {"input": S1, "model": tiny_model, "output": good, "to": "brbk7n", "progress": False, **settings}
        with pytest.raises(DualfaceError, match=words.replace("'", ".")):
            convert(ConvertConfig(**config))
        assert good.read_bytes() == b"an earlier good output", settings
    data = bytearray(write_video(tmp_path / "whole.mp4", s1_frames[:40]).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4000] = np.random.default_rng(1).integers(0, 256, 4000, np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    with pytest.raises(DualfaceError, match="nothing was written"):
        run(tiny_model, tmp_path / "damaged.mp4", good)
    assert good.read_bytes() == b"an earlier good output"
    assert not list(tmp_path.glob(".good*"))  # no temporary file left behind


def test_an_error_reading_the_input_is_not_blamed_on_the_output(tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(IsADirectoryError), video_writer(out, S1) as write:
        write(np.zeros((288, 360, 3), np.uint8))
        tmp_path.read_bytes()  # the caller's own read fails: its error, not "cannot write o.mp4"
    assert not out.exists() and not list(tmp_path.glob(".o*"))


def test_cli_errors_are_one_line(tiny_model, tmp_path):
    (tmp_path / "f").write_text("x")
    one_line_error(
        dualface("convert", str(S1), "-m", str(tiny_model), "--to", "brbk7n", "-o", str(tmp_path / "f" / "o.mp4")),
        "not a folder",
    )
    one_line_error(
        dualface("convert", str(S1), "-m", str(tiny_model), "--to", "brbk7n", "-o", str(tmp_path / "o.avi")), ".avi"
    )
    one_line_error(dualface("convert", str(S1), "-m", str(tiny_model), "--to", "nobody", "-o", "x.mp4"), "nobody")
    swap = ["convert", str(S1), "-m", str(tiny_model), "--to", "brbk7n", "-o", str(tmp_path / "o.mp4")]
    one_line_error(dualface(*swap, "--device", "gpu"), "--device gpu", "not a device")
    one_line_error(dualface(*swap, "--x264-preset", "fastest"), "--x264-preset", "fastest")
    one_line_error(dualface(*swap, "--alignments", str(tmp_path)), str(tmp_path), "a folder, not an alignments file")
    save_checkpoint(tmp_path / "critic.safetensors", torch.nn.Linear(2, 2), None, 1, {"role": "critic"})
    one_line_error(dualface(*swap, "--checkpoint", str(tmp_path / "critic.safetensors")), "critic", "not a dualface")
    assert not (tmp_path / "o.mp4").exists()


def test_odd_sized_video_and_partial_alignments(tiny_model, tmp_path, s1_frames):
    odd = tmp_path / "odd.mkv"
    with av.open(str(odd), "w") as container:  # ffv1 takes odd sides, which H.264 in yuv420p cannot
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 359, 287, "yuv444p"
        for frame in s1_frames[:10]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame[:287, :359].copy(), format="rgb24")))
        container.mux(stream.encode())
    summary = run(tiny_model, odd, tmp_path / "odd_swap.mp4")
    assert summary.faces_swapped == 10
    with av.open(str(tmp_path / "odd_swap.mp4")) as out:
        assert (out.streams.video[0].width, out.streams.video[0].height) == (360, 288)
    extract(ExtractConfig(inputs=[S1], output=tmp_path / "sparse", every=5, progress=False))
    with pytest.raises(DualfaceError, match="does not cover every frame"):
        run(tiny_model, S1, tmp_path / "x.mp4", alignments=tmp_path / "sparse" / f"{S1.stem}.alignments.json")


def test_a_phone_video_converts_upright(tiny_model, tmp_path, s1_frames):
    """A phone stores portrait video sideways with a display matrix; read upright, it is written upright,
    at its upright size, with no matrix left to turn it again."""
    sideways = [np.ascontiguousarray(np.rot90(f, 1)) for f in s1_frames[:10]]
    clip = write_video(tmp_path / "phone.mp4", sideways, rotation=-90)
    output = tmp_path / "upright.mp4"
    assert run(tiny_model, clip, output).faces_swapped == 10
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (360, 288)
        assert not next(container.decode(stream)).rotation
    backdrop = np.abs(frames(output)[0][:40].astype(int) - s1_frames[0][:40]).mean()
    assert backdrop < 6  # the studio wall above the head, where it is in the upright source
    report = verify(output, samples=0)
    assert report.marked and report.metadata.startswith(SYNTHETIC_NOTICE)


def test_a_variable_rate_video_keeps_its_frame_times(tiny_model, tmp_path, s1_frames):
    """Frames 80 ms apart, then 40: spaced evenly at the average rate instead, the picture would drift
    from the (untouched) sound by up to 190 ms."""
    stamps = [80 * i for i in range(8)] + [640 + 40 * i for i in range(12)]
    clip = write_video(tmp_path / "vfr.mp4", s1_frames[:20], times_ms=stamps)
    output = tmp_path / "out.mp4"
    assert run(tiny_model, clip, output).frames == 20
    assert np.allclose(frame_times(clip), np.array(stamps) / 1000)
    assert np.abs(np.array(frame_times(output)) - np.array(stamps) / 1000).max() < 0.005


def test_a_silent_video_keeps_its_frame_times_in_matroska(tmp_path, s1_frames):
    """Matroska puts its stream on a 1/1000 clock when it writes its header, at the first packet muxed:
    without sound, that is after x264's lookahead, a dozen frames in. Timed on the stream's clock, the
    frames after it jumped (frame 12 of a 1.2 s clip at 5.7 s) and verify sampled a few frames of a
    phantom thousand."""
    clip = write_video(tmp_path / "silent.mp4", s1_frames[:30])  # no audio stream, on a 1/12800 clock
    output = tmp_path / "o.mkv"
    with video_writer(output, clip) as write:
        for _, frame in read_video(clip):
            write(frame)
    assert np.abs(np.array(frame_times(output)) - np.arange(30) / 25).max() < 0.002
    with av.open(str(clip)) as source, av.open(str(output)) as out:
        assert not out.streams.audio and abs(out.duration - source.duration) <= 1_000_000 / 25  # within a frame
    assert len(verify(output, samples=10).frames) == 10


def test_frame_times_and_aac_settings_are_plain_data():
    tb, rate = Fraction(1, 90000), Fraction(25)
    assert [frame_pts(None, i, None if i == 0 else 3600 * (i - 1), rate, tb) for i in range(3)] == [0, 3600, 7200]
    assert frame_pts(0.2, 3, 7200, rate, tb) == 18000  # a frame's own time, where the file gives one
    assert frame_pts(0.04, 3, 7200, rate, tb) == 10800  # a clock reset (joined recordings): one frame on
    ntsc, ms = Fraction(30000, 1001), Fraction(1, 1000)  # 29.97 fps on a Matroska clock: no 1% drift
    last = None
    for i in range(3000):
        last = frame_pts(None, i, last, ntsc, ms)
    assert abs(last - 2999 * 1001 / 30) <= 1
    assert aac_settings(44100, "stereo", 2) == (44100, "stereo")
    assert aac_settings(192000, "2 channels", 2) == (48000, "stereo")  # a rate AAC lacks, a layout unnamed
    assert aac_settings(48000, "6 channels", 6) == (48000, "5.1")


def sound_of(path: Path, rate: int, layout: str, fmt: str) -> list[av.AudioFrame]:
    """A clip's own sound, resampled to `rate`, `layout` and sample format `fmt`."""
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
    with av.open(str(path)) as container:
        sound = [out for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    return sound + resampler.resample(None)


def with_sound(path: Path, images: list[np.ndarray], sounds: list[tuple[str, int, str]]) -> Path:
    """H.264 video of `images` with S1's sound in each (encoder, rate, layout) given, one stream each."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audios = [container.add_stream(codec, rate=rate, layout=layout) for codec, rate, layout in sounds]
        for image in images:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        for audio, (_, rate, layout) in zip(audios, sounds, strict=True):
            for frame in sound_of(S1, rate, layout, audio.format.name):
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


def seconds_of_sound(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def test_sound_aac_cannot_take_is_converted_and_mp3_is_copied(tiny_model, tmp_path, s1_frames):
    cases = {  # input: (its sound, the output's codec and rate)
        "pcm.avi": (("pcm_s16le", 44100, "stereo"), ("aac", 44100)),  # AVI names no layout: "2 channels"
        "pcm48k.mkv": (("pcm_s16le", 48000, "stereo"), ("aac", 48000)),  # Matroska's PCM neither
        "pcm192k.mov": (("pcm_s16le", 192000, "stereo"), ("aac", 48000)),  # AAC has no 192 kHz
        "mp3.avi": (("libmp3lame", 44100, "stereo"), ("mp3", 44100)),  # decodes as "mp3float"; MP4 holds MP3
    }
    for name, (sound, kept) in cases.items():
        clip = with_sound(tmp_path / name, s1_frames[:8], [sound])
        output = tmp_path / f"{name}.mp4"
        run(tiny_model, clip, output)
        with av.open(str(output)) as container:
            (audio,) = container.streams.audio
            assert (audio.codec_context.codec.canonical_name, audio.rate, audio.channels) == (*kept, 2), name
        assert abs(seconds_of_sound(output) - seconds_of_sound(clip)) < 0.05, name


def test_only_the_first_sound_is_kept_and_that_is_said(tmp_path, s1_frames, caplog):
    clip = with_sound(tmp_path / "two.mkv", s1_frames[:4], [("aac", 44100, "stereo"), ("libopus", 48000, "stereo")])
    with caplog.at_level(logging.WARNING, logger="dualface.writer"), video_writer(tmp_path / "o.mp4", clip) as write:
        for _, frame in read_video(clip):
            write(frame)
    assert any("2 audio streams" in r.message and "first (stream 1)" in r.message for r in caplog.records)
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]


def test_a_size_change_part_way_is_one_clear_error(tmp_path, s1_frames):
    """Two recordings joined (MPEG-TS concatenates byte for byte): H.264 cannot change size mid-stream."""
    bigger = [cv2.resize(f, (480, 384), interpolation=cv2.INTER_CUBIC) for f in s1_frames[5:10]]
    first = write_video(tmp_path / "a.ts", s1_frames[:5]).read_bytes()
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first + write_video(tmp_path / "b.ts", bigger).read_bytes())
    output = tmp_path / "o.mp4"
    with pytest.raises(DualfaceError) as error, video_writer(output, joined) as write:
        for _, frame in read_video(joined):
            write(frame)
    message = str(error.value)
    assert all(w in message for w in ("joined.ts", "frame 5", "480x384", "360x288")) and "\n" not in message
    assert not output.exists()


def test_verify_reads_the_notice_of_mkv_and_png(tmp_path, s1_frames):
    with video_writer(tmp_path / "o.mkv", S1) as write:  # Matroska upper-cases its tag names
        for frame in s1_frames[:3]:
            write(frame)
    assert verify(tmp_path / "o.mkv", samples=0).metadata.startswith(SYNTHETIC_NOTICE)
    write_image(tmp_path / "o.png", s1_frames[0])
    assert verify(tmp_path / "o.png").metadata.startswith(SYNTHETIC_NOTICE)  # the notice, not the flag
    Image.fromarray(s1_frames[0]).save(tmp_path / "holiday.png")
    assert verify(tmp_path / "holiday.png").metadata == ""


def test_a_folder_with_an_unreadable_photo_converts_the_rest_and_fails(tiny_model, tmp_path, stills):
    (stills / "s1_9.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DualfaceError, match=r"s1_9\.jpg: not a readable image .*: not converted; the other 4"):
        run(tiny_model, stills, tmp_path / "many")
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == [f"s1_{i}.png" for i in range(4)]


def test_an_output_convert_cannot_write_is_refused_before_the_model_loads(tmp_path, stills):
    no_model = tmp_path / "no_model"  # loading it would fail: the output's error must come first
    no_model.mkdir()
    cases = [
        (S1, "o.avi", r"o\.avi: a video converts to a .*\.mp4 file"),
        (S1, "o.webm", r"o\.webm: a video converts to"),
        (stills, "x.mp4", r"x\.mp4: a folder of images converts to a folder"),
    ]
    for clip, name, words in cases:
        with pytest.raises(DualfaceError, match=words):
            convert(ConvertConfig(input=clip, model=no_model, output=tmp_path / name, to="brbk7n", progress=False))
    assert not (tmp_path / "x.mp4").exists()  # not made a folder
