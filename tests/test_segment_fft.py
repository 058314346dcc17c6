"""segment(method="fft") against the direct path and the patch classifier: awkward
sizes, pooling, channels, every FOV case; the method choice; the plan's records."""
import importlib
import tracemalloc

import numpy as np
import pytest
from _segment_helpers import (  # noqa: F401
    all_pixels,
    image_of,
    reference_probability,
    tiny_net,
    usable_backend,
)

import fastseg
from fastseg import _dense, _dense_cost, models, nn, segment

segment_module = importlib.import_module("fastseg.segment")

CASES = [  # (channels, pool, strided, patch, tile, (H, W))
    (1, False, False, 9, None, (23, 31)),    # prime sizes
    (1, False, False, 9, 5, (17, 13)),
    (3, False, False, 10, 7, (17, 13)),      # multi-channel input
    (1, True, False, 11, 6, (21, 19)),       # pooling: shift-and-stitch
    (3, True, False, 12, None, (29, 37)),
    (1, False, True, 11, 5, (19, 14)),       # a strided conv (it stays direct)
    (1, False, False, 9, None, (5, 4)),      # smaller than the patch and than a tile
    (1, False, False, 9, None, (1, 23)),     # one-pixel-high strip
    (2, True, False, 11, None, (29, 1)),     # one-pixel-wide strip, pooling
]


@pytest.mark.parametrize("c,pool,strided,patch,tile,hw", CASES)
def test_fft_equals_direct_and_patch_classifier(c, pool, strided, patch, tile, hw):
    net = tiny_net(c, patch, pool, strided=strided)
    image = image_of(c, *hw, seed=sum(hw))
    direct = segment(net, image, patch_size=patch, tile=tile, method="direct")
    fft = segment(net, image, patch_size=patch, tile=tile, method="fft")
    assert fft.shape == hw and fft.dtype == np.float32
    np.testing.assert_allclose(fft, direct, atol=1e-5, rtol=0)
    ref = reference_probability(net, image, all_pixels(*hw), patch).reshape(hw)
    np.testing.assert_allclose(fft, ref, atol=1e-5, rtol=0)
    assert fft.std() > 0.01 or min(hw) == 1


def test_fft_runs_what_the_schedule_says(monkeypatch):
    """method="fft" puts every stride-1 convolution larger than 1x1 on the FFT
    path (the 1x1 last layer rides along, fused), "direct" none."""
    net = tiny_net(1, 9)
    dense = _dense.plan(net, 9)
    fft = _dense_cost.schedule(dense, (30, 30), "fft")
    convs = [i for i, s in enumerate(dense.steps) if isinstance(s, _dense.Conv)]
    assert sorted(fft.fft) == convs[:3]  # conv, conv, the Linear as a 5x5 conv
    assert not _dense_cost.schedule(dense, (30, 30), "direct").fft
    calls = []
    real = _dense.DensePlan._run_fft

    def spy(self, x, i, how, workers):
        calls.append(i)
        return real(self, x, i, how, workers)

    monkeypatch.setattr(_dense.DensePlan, "_run_fft", spy)
    segment(net, image_of(1, 12, 12), method="fft")
    assert sorted(set(calls)) == convs[:3]


def test_fov_cases_on_the_fft_path(monkeypatch):
    net = tiny_net(1, 9)
    image = image_of(1, 40, 40)
    fov = np.zeros((40, 40), bool)
    fov[3:12, 5:15] = True
    calls = []
    real = segment_module._segment_tile

    def counting(*args):
        calls.append(args[2:4])
        return real(*args)

    monkeypatch.setattr(segment_module, "_segment_tile", counting)
    prob = segment(net, image, fov=fov, tile=10, method="fft")
    assert sorted(calls) == [(0, 0), (0, 10), (10, 0), (10, 10)]
    assert (prob[~fov] == 0).all()
    np.testing.assert_allclose(prob[fov], reference_probability(net, image, np.argwhere(fov), 9),
                               atol=1e-5)
    monkeypatch.undo()
    assert not segment(net, image, fov=np.zeros((40, 40), bool), method="fft").any()
    one = np.zeros((40, 40), bool)
    one[39, 0] = True  # a corner pixel only
    got = segment(net, image, fov=one, method="fft")
    assert np.count_nonzero(got) == 1
    assert abs(got[39, 0] - reference_probability(net, image, [[39, 0]], 9)[0]) < 1e-5
    nonbool = np.where(fov, 7, 0)  # any non-zero is inside
    np.testing.assert_array_equal(segment(net, image, fov=nonbool, method="fft"),
                                  segment(net, image, fov=fov, method="fft"))


def test_lai2d_fft_matches_direct_to_1e4():
    fastseg.seed(0)
    net = models.lai2d().eval()
    image = image_of(1, 45, 38, seed=5)
    direct = segment(net, image, method="direct")
    for method in ("fft", "auto"):
        got = segment(net, image, method=method)
        assert np.abs(got - direct).max() <= 1e-4
    assert direct.std() > 1e-3


def test_auto_takes_fft_for_lai2d_fully_connected_layer_only():
    fastseg.seed(0)
    dense = _dense.plan(models.lai2d(), 24)
    kinds = [type(s).__name__ for s in dense.steps]
    assert kinds == ["Conv", "Act", "Conv", "Act", "Conv", "Act", "Conv"]
    for hw in ((584, 565), (1411, 1411), (4096, 4096)):
        plan = _dense_cost.schedule(dense, hw, "auto", threads=2, backend="c")
        assert list(plan.fft) == [4], (hw, plan)
        shape = plan.fft[4].fft_shape
        assert _dense_cost.fc.KernelSpectra.nbytes_for(1000, 50, shape) \
            <= _dense_cost.SPECTRA_BUDGET_BYTES
    tiny = _dense.plan(tiny_net(1, 9), 9)
    assert not _dense_cost.schedule(tiny, (40, 40), "auto", threads=2, backend="c").fft
    assert not _dense_cost.schedule(dense, (584, 565), "auto", backend="cuda").fft


def test_method_errors_name_the_caller():
    image = image_of(1, 12, 12)
    for bad in ("FFT", "fast", None, 3):
        with pytest.raises(ValueError, match="method"):
            segment(tiny_net(1, 9), image, method=bad)
    pointwise = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU(), nn.Conv2d(3, 4, 2, stride=2),
                              nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"^segment: method='fft' is impossible"):
        segment(pointwise, image, patch_size=2, method="fft")
    np.testing.assert_allclose(segment(pointwise, image, patch_size=2, method="auto"),
                               segment(pointwise, image, patch_size=2, method="direct"))
    dense = _dense.plan(tiny_net(1, 9), 9, caller="Segmenter.predict_proba")
    with pytest.raises(ValueError, match=r"^Segmenter.predict_proba: method='fft' runs on"):
        _dense_cost.schedule(dense, (12, 12), "fft", backend="cuda")
    padded = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 81, 2))
    with pytest.raises(ValueError, match=r"^Segmenter.predict_proba: cannot run"):
        _dense.plan(padded, 9, caller="Segmenter.predict_proba")
    with pytest.raises(ValueError, match=r"^segment: cannot run"):
        segment(padded, image, patch_size=9)


def test_spectra_kept_on_the_plan_and_renewed_when_weights_change():
    net = tiny_net(1, 9)
    image = image_of(1, 20, 20)
    first = segment(net, image, method="fft")
    kept = _dense._cache[0][1]
    spectra = dict(kept._spectra)
    assert spectra and _dense._cache[0][0]() is net
    np.testing.assert_array_equal(segment(net, image, method="fft"), first)
    assert all(kept._spectra[i] is s for i, s in spectra.items())  # reused, not recomputed
    net[-1].weight.data[...] *= -1  # in place: the checksum sees it
    flipped = segment(net, image, method="fft")
    np.testing.assert_allclose(flipped, segment(net, image, method="direct"), atol=1e-5)
    assert np.abs(flipped - first).max() > 0.1


def test_memory_stays_bounded_with_fft():
    net = tiny_net(1, 9, hidden=4)
    image = image_of(1, 1024, 1024)
    tracemalloc.start()
    try:
        prob = segment(net, image, method="fft", tile=128, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Input, padded input and output planes (12 MiB) and one 128-pixel tile's work.
    assert peak < 40 * 2**20, peak / 2**20
    coords = np.array([[0, 0], [1023, 1023], [511, 700]])
    np.testing.assert_allclose(prob[coords[:, 0], coords[:, 1]],
                               reference_probability(net, image, coords, 9), atol=1e-5)


def test_plan_steps_are_typed_records():
    dense = _dense.plan(tiny_net(3, 11, pool=True), 11)
    conv, act, pool = dense.steps[:3]
    assert isinstance(conv, _dense.Conv) and conv.kernel == (3, 3) and conv.stride == (1, 1)
    assert (conv.in_channels, conv.out_channels, conv.ndim) == (3, 4, 2)
    assert act == _dense.Act("relu") and pool == _dense.Pool((2, 2), (2, 2))
    assert dense.strides == (2, 2) and dense.stride == 2
    assert dense.ndim == 2 and dense.num_classes == 2
    assert dense.shapes((3, 4))[0] == (2 * 2 + 11, 2 * 3 + 11)


def test_3d_plan_runs_on_the_fft_path():
    """A 3-D dense plan (the steps nn.Conv3d layers will give): its stride-1
    convolution by FFT, the activations and the 1x1x1 layer fused, against NumPy."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((6, 2, 3, 3, 3)).astype(np.float32)
    b1 = rng.standard_normal(6).astype(np.float32)
    w2 = rng.standard_normal((2, 6, 1, 1, 1)).astype(np.float32)
    dense = _dense.DensePlan([_dense.Conv(w1, b1, (1, 1, 1)), _dense.Act("tanh"),
                              _dense.Conv(w2, None, (1, 1, 1))], patch_size=3, in_channels=2,
                             num_classes=2, strides=(1, 1, 1), ndim=3)
    x = rng.standard_normal((1, 2, 7, 6, 5)).astype(np.float32)
    how = _dense_cost.FFTStep(fft_shape=(4, 4, 4), group=4)
    got = dense.run(x, _dense_cost.Schedule(tile=5, fft={0: how}))
    pre = np.zeros((6, 5, 4, 3))
    for a in range(3):
        for b in range(3):
            for c in range(3):
                pre += np.einsum("fc,cxyz->fxyz", w1[:, :, a, b, c],
                                 x[0, :, a:a + 5, b:b + 4, c:c + 3])
    want = np.einsum("pf,fxyz->pxyz", w2[:, :, 0, 0, 0], np.tanh(pre + b1[:, None, None, None]))
    assert got.shape == (1, 2, 5, 4, 3)
    np.testing.assert_allclose(got[0], want, atol=1e-4)
    np.testing.assert_allclose(dense.run(x), got, atol=1e-4)  # direct: ops.conv3d


def test_lai3d_plan_runs_direct_and_by_fft_like_the_patch_classifier():
    """The dense plan of the report's 3-D network (Conv3d, MaxPool3d, the fully connected
    layer as a 2x2x2 convolution): one window run directly (ops.conv3d) and with every
    stride-1 convolution by FFT gives, at each output, the class scores of its patch."""
    fastseg.seed(2)
    net = models.lai3d(patch_size=16, conv_channels=(3, 4), hidden=6).eval()
    for p in net.parameters():
        p.data *= 3
    dense = _dense.plan(net, _dense.infer_patch_size(net))
    assert dense.patch_size == 16 and dense.ndim == 3 and dense.strides == (2, 2, 2)
    assert [type(s).__name__ for s in dense.steps] == ["Conv", "Act", "Pool", "Conv", "Act",
                                                       "Conv", "Act", "Conv"]
    out = (3, 2, 4)
    window = dense.input_shape(out)
    x = np.random.default_rng(1).standard_normal((1, 1, *window)).astype(np.float32)
    shapes = dense.shapes(out)
    fft = {i: _dense_cost.FFTStep(tuple(_dense_cost.fc.fast_length(n) for n in shapes[i]), 2)
           for i, s in enumerate(dense.steps) if _dense_cost._eligible(s)}
    assert sorted(fft) == [0, 3, 5]
    direct = dense.run(x)
    by_fft = dense.run(x, _dense_cost.Schedule(tile=1, fft=fft, workers=2))
    assert direct.shape == by_fft.shape == (1, 2, *out)
    np.testing.assert_allclose(by_fft, direct, atol=1e-4)
    for z, y, w in [(0, 0, 0), (2, 1, 3), (1, 0, 2)]:
        patch = x[:, :, 2 * z:2 * z + 16, 2 * y:2 * y + 16, 2 * w:2 * w + 16]
        np.testing.assert_allclose(direct[0, :, z, y, w], net(patch)[0], atol=1e-4)
