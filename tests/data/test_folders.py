"""Image folders of any size: the hash split, the streamed pipeline's pure views, host corruptions, whole-image
evaluation, and the embedded photographs and faces. Small generated folders of real image files."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

import dae_jax
from dae_jax import host_corruptions
from dae_jax.data import builders, embedded, folders, pipeline, sources, stream, views
from dae_jax.eval import whole_image
from dae_jax.training.state import create_train_state


def draw(path, height, width, seed, gray=False):
    """A picture with structure (a gradient, two discs, text) of the given size, saved as PNG or JPEG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = Image.fromarray(
        np.stack([x * 255 // width, y * 255 // height, np.full_like(x, seed * 37 % 256)], -1).astype(np.uint8)
    )
    pen = ImageDraw.Draw(image)
    for _ in range(2):
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        pen.ellipse([x0, y0, x0 + 12, y0 + 9], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pen.text((2, 2), str(seed), fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    (image.convert("L") if gray else image).save(path)


@pytest.fixture
def folder(tmp_path):
    """40 pictures of 40-90 px, gray and RGB, PNG and JPEG, in nested folders; and a TFDS data dir."""
    rng = np.random.default_rng(1)
    for i in range(40):
        h, w = (int(v) for v in rng.integers(40, 90, 2))
        draw(tmp_path / "pics" / f"set{i % 3}" / f"{i}.{'jpg' if i % 2 else 'png'}", h, w, i, gray=i % 4 == 0)
    return tmp_path / "pics", str(tmp_path / "tfds")


def _setup(image_dir, data_dir, **fields):
    config = dae_jax.configs.load("superres_photos")
    config.data.dataset, config.data.image_dir, config.data.data_dir = "image_folder", str(image_dir), data_dir
    config.data.views_per_image = 1
    config.image_shape, config.batch_size = (32, 32, 3), 4
    for field, value in fields.items():
        dae_jax.configs.set_field(config, field, value)
    return dae_jax.Setup.from_config(config), config


def test_any_sizes_and_channels_stream_as_views_of_the_model_size(folder):
    setup, config = _setup(*folder)
    splits = pipeline.prepare(config.data, channels=3)
    assert splits.streamed and splits.image_shape is None and sum(splits.sizes.values()) == 40
    batch = next(stream.train_batches(splits.source_of("train"), setup.image_spec, 4, epoch=0))
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.uint8  # gray files as RGB
    gray = dae_jax.Setup.from_config(config).image_spec.__class__(**{**vars(setup.image_spec), "channels": 1})
    assert next(stream.train_batches(splits.source_of("train"), gray, 4, 0))["image"].shape == (4, 32, 32, 1)


def test_hash_split_is_stable_when_files_are_added(folder):
    image_dir, _ = folder
    before = {p: split for split, items in folders.scan(image_dir).items() for p, _ in items}
    for i in range(40, 60):
        draw(image_dir / "new" / f"{i}.png", 50, 60, i)
    after = {p: split for split, items in folders.scan(image_dir).items() for p, _ in items}
    assert all(after[p] == split for p, split in before.items()) and len(after) == 60
    assert {s for s in after.values()} == {"train", "validation", "test"}
    (image_dir / "train").mkdir()  # with train/ and test/ folders, the folders decide
    draw(image_dir / "train" / "a.png", 40, 40, 1)
    draw(image_dir / "test" / "cls" / "b.png", 40, 40, 2)
    by_folder = folders.scan(image_dir)
    assert [p for p, _ in by_folder["test"]] == ["test/cls/b.png"] and by_folder["test"][0][1] == "cls"


def test_views_are_a_pure_function_of_seed_epoch_and_index(folder):
    setup, config = _setup(*folder, **{"data.flip": True})
    source = pipeline.prepare(config.data, channels=3).source_of("train")

    def epoch(e, skip=0, threads=2):
        return list(stream.train_batches(source, setup.image_spec, 4, e, skip, threads=threads))

    first = epoch(0)
    again = epoch(0, threads=1)  # another number of threads: the same batches
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, again, strict=True))
    resumed = epoch(0, skip=3)  # a run resumed at its 4th batch reads exactly the rest
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first[3:], resumed, strict=True))
    assert not np.array_equal(first[0]["row"], epoch(1)[0]["row"])  # a new order and new crops each epoch
    image = np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)
    a = views.train_view(image, (16, 16), views.rng(0, 2, 5), "crop", True)
    assert np.array_equal(a, views.train_view(image, (16, 16), views.rng(0, 2, 5), "crop", True))
    assert views.train_view(image[:10, :10], (16, 16), views.rng(0, 0, 0)).shape == (16, 16, 3)  # covered first


def test_host_corruptions_are_keyed_registered_and_composable():
    image = np.asarray(Image.new("RGB", (40, 30), (200, 30, 90)))
    host, device = host_corruptions.split(
        {"name": "compose", "steps": [{"name": "jpeg", "quality": [10, 30]}, {"name": "gaussian", "sigma": 0.1}]}
    )
    assert [s["name"] for s in host] == ["jpeg"] and device == {"name": "gaussian", "sigma": 0.1}
    corrupt = host_corruptions.make(host)
    out = stream.host_input(corrupt, 0, 3, 7, image)
    assert out.shape == image.shape and np.array_equal(out, stream.host_input(corrupt, 0, 3, 7, image))
    assert host_corruptions.make([{"name": "downscale", "factor": 2}])(None, image).shape == image.shape
    with pytest.raises(ValueError, match="put it before the on-device steps"):
        host_corruptions.split({"name": "compose", "steps": [{"name": "gaussian"}, {"name": "jpeg"}]})
    with pytest.raises(ValueError, match=r"quality must be an int in \[1, 95\]"):
        host_corruptions.split({"name": "jpeg", "quality": 0})


@pytest.mark.slow  # 20 s on 2 cores
def test_whole_image_evaluation_equals_a_per_image_loop(folder):
    setup, config = _setup(*folder)
    splits = pipeline.prepare(config.data, channels=3)
    variables = create_train_state(setup).variables()
    examples = list(stream.eval_images(splits.source_of("test"), setup.image_spec))
    assert len({e["image"].shape for e in examples}) > 1  # images of several sizes, scored whole
    means = whole_image.mean_over_processes(whole_image.score_images(setup, variables, iter(examples), setup.keys.eval))
    psnr = []
    for e in examples:  # by hand: the noise at the image's size, padded, the model, cropped back
        clean = e["image"][None].astype(np.float32) / 255
        noisy = np.asarray(setup.eval_noisy(clean, np.asarray([e["row"]])))
        padded = np.pad(noisy, ((0, 0), (0, -noisy.shape[1] % 64), (0, -noisy.shape[2] % 64), (0, 0)), mode="edge")
        output = np.asarray(setup.output(variables, padded))[:, : clean.shape[1], : clean.shape[2]]
        psnr.append(float(dae_jax.metrics.psnr(output, clean)[0]))
    np.testing.assert_allclose(means["psnr"], np.mean(psnr), rtol=1e-5)


def test_embedded_photographs_and_faces(tmp_path):
    photos = builders.builder(sources.resolve_source("embedded", dataset="photos"), str(tmp_path))
    assert {s: photos.info.splits[s].num_examples for s in ("train", "validation", "test")} == {
        "train": 13,
        "validation": 2,
        "test": 4,
    }
    paths = sorted(e["path"].decode() for e in photos.as_data_source("test"))
    assert paths == sorted(f for f, split in embedded.HELD_OUT if split == "test")
    faces = builders.builder(sources.resolve_source("embedded", dataset="faces"), str(tmp_path))
    assert sum(s.num_examples for s in faces.info.splits.values()) == 100
    face = stream.decode(faces.as_data_source("train")[0], stream.ImageSpec(0, (24, 24), 3, center_crop=24))
    assert face.shape == (24, 24, 3) and face.std() > 5  # a real face, repeated to RGB
