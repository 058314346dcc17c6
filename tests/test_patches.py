import numpy as np
import pytest

from fastseg.data import pad_for_patches, patches_at, patches_from_padded


def _direct(image, r, c, size):
    before = size // 2
    after = size - 1 - before
    p = np.pad(image, ((0, 0), (before, after), (before, after)), mode="reflect")
    return p[:, r:r + size, c:c + size]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 24, 25])
def test_matches_direct_reflect_slice(size):
    rng = np.random.default_rng(size)
    img = rng.standard_normal((2, 40, 33)).astype(np.float32)
    coords = np.array([[0, 0], [39, 32], [0, 32], [39, 0], [20, 16], [1, 31], [5, 2]])
    out = patches_at(img, coords, size)
    assert out.shape == (len(coords), 2, size, size)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    for k, (r, c) in enumerate(coords):
        np.testing.assert_array_equal(out[k], _direct(img, r, c, size))


@pytest.mark.parametrize("size", [4, 5])
def test_centre_convention(size):
    img = np.arange(30 * 30, dtype=np.float32).reshape(30, 30)
    out = patches_at(img, [[12, 17]], size)
    # The pixel is at index size // 2; the patch starts at r - size // 2.
    assert out[0, 0, size // 2, size // 2] == img[12, 17]
    assert out[0, 0, 0, 0] == img[12 - size // 2, 17 - size // 2]
    assert out[0, 0, -1, -1] == img[12 - size // 2 + size - 1, 17 - size // 2 + size - 1]


def test_reflect_does_not_repeat_edge():
    img = np.arange(10, dtype=np.float32)[None, :].repeat(10, 0)
    out = patches_at(img, [[5, 0]], 5)
    np.testing.assert_array_equal(out[0, 0, 0], [2, 1, 0, 1, 2])


def test_2d_image_and_dense_equivalence():
    rng = np.random.default_rng(0)
    img = rng.random((13, 11)).astype(np.float32)
    padded = pad_for_patches(img, 6)
    assert padded.shape == (1, 13 + 5, 11 + 5)
    rr, cc = np.meshgrid(np.arange(13), np.arange(11), indexing="ij")
    coords = np.stack([rr.ravel(), cc.ravel()], 1)
    all_p = patches_at(img, coords, 6)
    np.testing.assert_array_equal(all_p, patches_from_padded(padded, coords, 6))
    # A dense "network" (sum of each window) over the padded image equals per-patch sums.
    dense = np.lib.stride_tricks.sliding_window_view(padded[0], (6, 6)).sum((-1, -2))
    np.testing.assert_allclose(dense.ravel(), all_p.sum((1, 2, 3)), rtol=1e-5)


def test_small_image_repeated_reflection_is_defined():
    img = np.arange(3, dtype=np.float32).reshape(1, 3)
    out = patches_at(img, [[0, 0]], 11)
    np.testing.assert_array_equal(out[0, 0], _direct(img[None], 0, 0, 11)[0])


def test_empty_coords():
    out = patches_at(np.zeros((5, 5), np.float32), np.zeros((0, 2), np.int64), 3)
    assert out.shape == (0, 1, 3, 3)


@pytest.mark.parametrize("coords", [[[5, 0]], [[0, -1]], [[0, 5]], [[-1, -1]]])
def test_out_of_range_coords(coords):
    with pytest.raises(ValueError, match="coords out of range"):
        patches_at(np.zeros((5, 5), np.float32), coords, 3)


def test_bad_arguments():
    img = np.zeros((5, 5), np.float32)
    with pytest.raises(ValueError, match="coords"):
        patches_at(img, [1, 2], 3)
    with pytest.raises(TypeError, match="coords"):
        patches_at(img, [[1.5, 2.0]], 3)
    with pytest.raises(ValueError, match="size"):
        patches_at(img, [[1, 2]], 0)
    with pytest.raises(TypeError, match="size: expected an int, got float"):
        patches_at(img, [[1, 2]], 2.0)  # a non-integer is a TypeError, as everywhere
    with pytest.raises(ValueError, match="image"):
        patches_at(np.zeros((1, 2, 3, 4), np.float32), [[0, 0]], 3)
    with pytest.raises(ValueError, match="padded"):
        patches_from_padded(np.zeros((1, 2, 2), np.float32), [[0, 0]], 3)
