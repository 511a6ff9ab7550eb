import numpy as np
from PIL import Image

from dae_jax.eval import figures


def test_mosaic_enlarges_code_maps_to_the_digits_height_and_keeps_every_pixel():
    rng = np.random.default_rng(0)
    codes = rng.random((2, 7, 7, 1), dtype=np.float32)
    row = figures._mosaic(codes, 3, 28)  # 2 maps in 3 slots, shown 28 pixels high
    assert row.shape == (28, 3 * 28 + 2 * 2, 1)  # 3 slots, 2 gaps of 28 // 14 pixels
    np.testing.assert_array_equal(row[:28, :28], codes[0].repeat(4, 0).repeat(4, 1))  # each pixel 4x4
    np.testing.assert_array_equal(row[:, 30:58], codes[1].repeat(4, 0).repeat(4, 1))
    assert (row[:, 28:30] == 1).all() and (row[:, 58:] == 1).all()  # white gap, blank third slot
    mixed = figures._mosaic([np.full((24, 20, 1), 2.0), np.zeros((28, 28, 3))], 2, 28)  # a gray and an RGB image
    assert mixed.shape == (28, 58, 3) and (mixed[:24, :20] == 1).all()  # clipped to 1, broadcast over RGB
    assert (mixed[24:, :28] == 1).all() and (mixed[:, 30:] == 0).all()  # not enlarged (28 // 24 = 1), white below
    assert figures._mosaic(codes, 1, 25).shape == (25, 21, 1)  # 7x7 enlarged 3x: as large as fits 25 pixels
    assert (figures._mosaic([], 2, 28) == 1).all()  # an empty row is blank


def test_image_rows_writes_one_picture_per_row(tmp_path):
    rows = {"noisy": np.zeros((4, 28, 28, 1)), "clean": np.ones((4, 28, 28, 1))}
    figures.image_rows(rows, tmp_path / "grid.png", title="t")
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (480, 260)  # figsize (1.2 x 4, 1.3 x 2) inches at 100 dpi
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # written whole, no temporary left
