"""One check per concept (fastseg._validate), and the same meaning wherever it is used.

The FOV: an array of the image's shape, any non-zero value inside, NaN refused, None
the whole image; an empty FOV refused where a computation needs a pixel (metrics).
Integer arguments: a non-integer is a TypeError, an int out of range a ValueError.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from _segment_helpers import usable_backend  # noqa: F401

import fastseg
from fastseg import _shapes, _validate, errors, metrics, nn
from fastseg.data import PatchSampler, preprocess, synthetic_fundus
from fastseg.segmenter import Segmenter

# ---- the checks themselves ---------------------------------------------------------------


@pytest.mark.parametrize("value", [2.0, True, np.bool_(False), "3", None, 1.5])
def test_as_int_refuses_non_integers_with_type_error(value):
    with pytest.raises(errors.InvalidTypeError, match="n: expected an int"):
        _validate.as_int("n", value, minimum=0)


def test_as_int_range_is_a_value_error():
    assert _validate.as_int("n", np.int32(3), minimum=1, maximum=3) == 3
    with pytest.raises(errors.InvalidValueError, match="n: must be >= 1, got 0"):
        _validate.as_int("n", 0, minimum=1)
    with pytest.raises(errors.InvalidValueError, match="n: must be <= 3, got 4"):
        _validate.as_int("n", 4, maximum=3)


def test_as_triple():
    assert _validate.as_triple("stride", 2, minimum=1) == (2, 2, 2)
    assert _validate.as_triple("padding", [0, np.int64(1), 2], minimum=0) == (0, 1, 2)
    with pytest.raises(errors.InvalidValueError, match=r"stride: expected an int or 3 ints"):
        _validate.as_triple("stride", (1, 2), minimum=1)
    with pytest.raises(errors.InvalidValueError, match="stride: must be >= 1, got 0"):
        _validate.as_triple("stride", (1, 0, 1), minimum=1)
    with pytest.raises(errors.InvalidTypeError, match="padding: expected an int"):
        _validate.as_triple("padding", (0, 1.5, 0), minimum=0)


def test_window_sizes_by_rank():
    # 2-D: one int (a kernel size may be a pair of equal ints); 3-D: a triple.
    assert _validate.as_kernel_size("kernel_size", (3, 3), 2) == 3
    assert _validate.as_kernel_size("kernel_size", 3, 3) == (3, 3, 3)
    assert _validate.as_window_step("stride", 2, 2, minimum=1) == 2
    assert _validate.as_window_step("padding", (0, 1, 2), 3, minimum=0) == (0, 1, 2)
    with pytest.raises(errors.InvalidValueError, match="kernel_size: only square kernels"):
        _validate.as_kernel_size("kernel_size", (3, 2), 2)
    with pytest.raises(errors.InvalidTypeError, match="stride: expected an int"):
        _validate.as_window_step("stride", (1, 1), 2, minimum=1)
    with pytest.raises(errors.InvalidValueError, match="kernel_size: must be >= 1"):
        _validate.as_kernel_size("kernel_size", (1, 0, 1), 3)


def test_out_sizes_per_axis():
    assert _shapes.per_axis(2, 3) == (2, 2, 2) and _shapes.per_axis([1, 2], 2) == (1, 2)
    assert _shapes.out_sizes((7, 8), 3, 2, 1) == (4, 4)
    assert _shapes.out_sizes((6, 7, 8), (3, 2, 1), (1, 2, 3)) == (4, 3, 3)
    assert _shapes.out_sizes((2, 9), 3) == (0, 7)  # a window larger than the input: none


def test_as_real():
    assert _validate.as_real("p", 1, 0, 1) == 1.0
    assert _validate.as_real("p", np.float32(0.25), 0, 1) == 0.25
    for bad in (float("nan"), -0.1, 1.01):
        with pytest.raises(ValueError, match="p: must lie in"):
            _validate.as_real("p", bad, 0, 1)
    for bad in ("0.5", True, None):
        with pytest.raises(TypeError, match="p: expected a number"):
            _validate.as_real("p", bad, 0, 1)


def test_as_fov_meaning():
    np.testing.assert_array_equal(_validate.as_fov(None, (2, 3)), np.ones((2, 3), bool))
    raw = np.array([[0, 255, 1], [0, 0, 7]], np.uint8)
    want = raw != 0
    for fov in (raw, raw.astype(np.float32) / 255, raw.astype(bool), raw.tolist()):
        got = _validate.as_fov(fov, (2, 3))
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_validate.as_fov(np.ones((2, 3, 4)), (2, 3, 4)),
                                  np.ones((2, 3, 4), bool))  # a volume's FOV
    with pytest.raises(ValueError, match="fov: contains NaN"):
        _validate.as_fov(np.array([[0.0, np.nan]]), (1, 2))
    with pytest.raises(ValueError, match=r"fov: expected shape \(2, 2\)"):
        _validate.as_fov(np.ones((2, 3)), (2, 2))
    with pytest.raises(TypeError, match="mask: expected a bool or numeric mask"):
        _validate.as_fov(np.array([["a"]]), (1, 1), name="mask")
    assert not _validate.as_fov(np.zeros((2, 2)), (2, 2)).any()  # empty is fine by default
    with pytest.raises(ValueError, match="fov: is empty"):
        _validate.as_fov(np.zeros((2, 2)), (2, 2), need_inside=True)


# ---- the same FOV meaning in segment, preprocess, the sampler and the metrics ---------------

RAW_FOV = np.zeros((12, 12), np.uint8)
RAW_FOV[2:10, 3:11] = 255  # as read from a 0/255 mask image


def _patch_net():
    fastseg.seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 25, 2))


def test_segment_reads_a_0_255_fov_as_bool():
    image = np.random.default_rng(0).standard_normal((1, 12, 12)).astype(np.float32)
    net = _patch_net()
    want = fastseg.segment(net, image, fov=RAW_FOV > 0, patch_size=7)
    got = fastseg.segment(net, image, fov=RAW_FOV, patch_size=7)
    np.testing.assert_array_equal(got, want)
    assert (got[RAW_FOV == 0] == 0).all() and (got[RAW_FOV > 0] > 0).all()
    with pytest.raises(ValueError, match="fov: contains NaN"):
        fastseg.segment(net, image, fov=np.full((12, 12), np.nan), patch_size=7)


def test_preprocess_reads_a_0_255_fov_as_bool():
    image = np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess(image, RAW_FOV), preprocess(image, RAW_FOV > 0))
    np.testing.assert_array_equal(preprocess(image, None),
                                  preprocess(image, np.ones((12, 12), bool)))
    with pytest.raises(ValueError, match="fov: is empty"):
        preprocess(image, np.zeros((12, 12), np.uint8))


def test_sampler_reads_a_0_255_fov_as_bool():
    s = synthetic_fundus(1, shape=(64, 64), seed=3)[0]
    raw = SimpleNamespace(image=s.image, mask=s.mask, fov=s.fov.astype(np.uint8) * 255)
    a = PatchSampler([s], size=5, batch_size=8, seed=1, batches_per_epoch=2)
    b = PatchSampler([raw], size=5, batch_size=8, seed=1, batches_per_epoch=2)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    nan_fov = SimpleNamespace(image=s.image, mask=s.mask, fov=np.full(s.fov.shape, np.nan))
    with pytest.raises(ValueError, match=r"samples\[0\]\.fov: contains NaN"):
        PatchSampler([nan_fov], size=5)
    empty = SimpleNamespace(image=s.image, mask=s.mask, fov=np.zeros(s.fov.shape))
    with pytest.raises(ValueError, match=r"samples\[0\]\.fov: is empty"):
        PatchSampler([empty], size=5)


def test_metrics_read_a_0_255_fov_as_bool_and_refuse_an_empty_one():
    rng = np.random.default_rng(2)
    prob, mask = rng.random((12, 12)), rng.random((12, 12)) < 0.3
    assert metrics.evaluate(prob, mask, RAW_FOV) == metrics.evaluate(prob, mask, RAW_FOV > 0)
    assert metrics.evaluate(prob, mask, None) == metrics.evaluate(prob, mask,
                                                                  np.ones((12, 12), bool))
    assert metrics.cldice(mask, mask, RAW_FOV) == metrics.cldice(mask, mask, RAW_FOV > 0)
    for fn, args in ((metrics.evaluate, (prob, mask)), (metrics.cldice, (mask, mask))):
        with pytest.raises(ValueError, match="fov: is empty"):
            fn(*args, np.zeros((12, 12), np.uint8))
        with pytest.raises(ValueError, match="fov: contains NaN"):
            fn(*args, np.full((12, 12), np.nan))


# ---- integer arguments: TypeError for a non-integer, ValueError out of range, everywhere ---


def test_integer_arguments_have_one_error_contract():
    image = np.zeros((1, 12, 12), np.float32)
    net = _patch_net()
    s = synthetic_fundus(1, shape=(64, 64), seed=3)[0]
    with pytest.raises(TypeError, match="tile: expected an int"):
        fastseg.segment(net, image, patch_size=7, tile=4.0)
    with pytest.raises(ValueError, match="tile: must be >= 1"):
        fastseg.segment(net, image, patch_size=7, tile=0)
    with pytest.raises(TypeError, match="patch_size: expected an int"):
        fastseg.segment(net, image, patch_size="7")
    with pytest.raises(TypeError, match="batch_size: expected an int"):
        PatchSampler([s], batch_size=16.0)
    with pytest.raises(ValueError, match="batch_size: must be >= 1"):
        PatchSampler([s], batch_size=0)
    with pytest.raises(TypeError, match="epochs: expected an int"):
        Segmenter(epochs=1.5).fit([s.image], [s.mask])
    with pytest.raises(ValueError, match="epochs: must be >= 1"):
        Segmenter(epochs=0).fit([s.image], [s.mask])
    with pytest.raises(TypeError, match="n: expected an int"):
        synthetic_fundus(True)
    with pytest.raises(TypeError, match="kernel_size: expected an int"):
        nn.Conv2d(1, 2, 2.5)
