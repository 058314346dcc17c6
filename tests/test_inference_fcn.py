"""fastseg._inference.fcn: a patch classifier's fully convolutional plan: its typed steps,
2-D and 3-D windows run directly and by FFT against the classifier, the kept spectra."""
import weakref

import numpy as np
from _segment_helpers import image_of, tiny_net

import fastseg
from fastseg import backends, models, segment
from fastseg._inference import cost, fcn


def test_spectra_kept_on_the_plan_and_renewed_when_weights_change():
    net = tiny_net(1, 9)
    image = image_of(1, 20, 20)
    first = segment(net, image, method="fft")
    kept = fcn._cache[0][1]
    spectra = dict(kept._spectra)
    assert spectra and fcn._cache[0][0]() is net
    np.testing.assert_array_equal(segment(net, image, method="fft"), first)
    assert all(kept._spectra[i] is s for i, s in spectra.items())  # reused, not recomputed
    net[-1].weight.data[...] *= -1  # in place: the checksum sees it
    flipped = segment(net, image, method="fft")
    np.testing.assert_allclose(flipped, segment(net, image, method="direct"), atol=1e-5)
    assert np.abs(flipped - first).max() > 0.1


def test_plan_steps_are_typed_records():
    dense = fcn.plan(tiny_net(3, 11, pool=True), 11)
    conv, act, pool = dense.steps[:3]
    assert isinstance(conv, fcn.Conv) and conv.kernel == (3, 3) and conv.stride == (1, 1)
    assert (conv.in_channels, conv.out_channels, conv.ndim) == (3, 4, 2)
    assert act == fcn.Act("relu") and pool == fcn.Pool((2, 2), (2, 2))
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
    dense = fcn.DensePlan([fcn.Conv(w1, b1, (1, 1, 1)), fcn.Act("tanh"),
                              fcn.Conv(w2, None, (1, 1, 1))], patch_size=3, in_channels=2,
                             num_classes=2, strides=(1, 1, 1), ndim=3)
    x = rng.standard_normal((1, 2, 7, 6, 5)).astype(np.float32)
    how = cost.FFTStep(fft_shape=(4, 4, 4), group=4)
    got = dense.run(x, cost.Schedule(tile=5, fft={0: how}))
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
    dense = fcn.plan(net, fcn.infer_patch_size(net))
    assert dense.patch_size == 16 and dense.ndim == 3 and dense.strides == (2, 2, 2)
    assert [type(s).__name__ for s in dense.steps] == ["Conv", "Act", "Pool", "Conv", "Act",
                                                       "Conv", "Act", "Conv"]
    out = (3, 2, 4)
    window = dense.input_shape(out)
    x = np.random.default_rng(1).standard_normal((1, 1, *window)).astype(np.float32)
    shapes = dense.shapes(out)
    fft = {i: cost.FFTStep(tuple(cost.fc.fast_length(n) for n in shapes[i]), 2)
           for i, s in enumerate(dense.steps) if cost._eligible(s)}
    assert sorted(fft) == [0, 3, 5]
    direct = dense.run(x)
    by_fft = dense.run(x, cost.Schedule(tile=1, fft=fft, workers=2))
    assert direct.shape == by_fft.shape == (1, 2, *out)
    np.testing.assert_allclose(by_fft, direct, atol=1e-4)
    for z, y, w in [(0, 0, 0), (2, 1, 3), (1, 0, 2)]:
        patch = x[:, :, 2 * z:2 * z + 16, 2 * y:2 * y + 16, 2 * w:2 * w + 16]
        np.testing.assert_allclose(direct[0, :, z, y, w], net(patch)[0], atol=1e-4)


def _unstrided_plan(rng, ndim):
    """conv 3 -> tanh -> conv 4 (the window that dominates) -> relu -> 1x1 conv:
    K = 6, no strides."""
    k = (1,) * ndim
    w1 = rng.standard_normal((5, 2) + (3,) * ndim).astype(np.float32)
    w2 = rng.standard_normal((7, 5) + (4,) * ndim).astype(np.float32)
    w3 = rng.standard_normal((2, 7) + (1,) * ndim).astype(np.float32)
    bias = [rng.standard_normal(n).astype(np.float32) for n in (5, 7, 2)]
    return fcn.DensePlan([fcn.Conv(w1, bias[0], k), fcn.Act("tanh"),
                          fcn.Conv(w2, bias[1], k), fcn.Act("relu"),
                          fcn.Conv(w3, bias[2], k)], patch_size=6, in_channels=2,
                         num_classes=2, strides=k, ndim=ndim)


def test_lattice_of_an_unstrided_plan_takes_its_last_window_strided():
    """run_lattice of an unstrided plan computes the last window only at the lattice's
    positions (then the 1x1 layer): the dense block's values there, whatever the step
    (1, primes, uneven per axis in 3-D), origin and counts, directly and with the earlier
    layer by FFT; a 2-D lattice uneven per axis (ops' 2-D convolutions take one stride)
    keeps every step-th of the block, with the same values."""
    rng = np.random.default_rng(3)
    for ndim, step, counts, origin in [(2, (4, 4), (5, 3), (1, 2)), (2, (3, 1), (7, 2), (0, 0)),
                                       (2, (2, 5), (1, 1), (3, 0)),
                                       (3, (2, 3, 1), (3, 2, 4), (1, 0, 2))]:
        dense = _unstrided_plan(rng, ndim)
        assert dense._last_window() == 2
        full = tuple((c - 1) * s + 1 for c, s in zip(counts, step, strict=True))
        padded = rng.standard_normal((2,) + tuple(o + n + 5 for o, n in zip(origin, full,
                                                                           strict=True)))
        padded = padded.astype(np.float32)
        block = dense.run_block(padded, origin, full)
        want = block[(slice(None),) + tuple(slice(None, None, s) for s in step)]
        got = dense.run_lattice(padded, origin, counts, step)
        assert got.shape == (2, *counts)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        by_fft = cost.Schedule(tile=8, fft={0: cost.FFTStep(fft_shape=(8,) * ndim, group=4)})
        np.testing.assert_allclose(dense.run_lattice(padded, origin, counts, step, by_fft),
                                   want, atol=1e-4, rtol=0)


def test_lattice_keeps_the_dense_path_when_a_pool_or_stride_comes_last():
    """No strided shortcut when the last window is a pooling (its stride would change
    what it pools) or the plan has strides: those run the block and keep every step-th."""
    dense = fcn.plan(tiny_net(1, 11, pool=True), 11)
    assert dense.strides == (2, 2)
    pooled_last = fcn.DensePlan([fcn.Pool((2, 2), (1, 1))], patch_size=2, in_channels=1,
                                num_classes=1, strides=(1, 1), ndim=2)
    assert pooled_last._last_window() is None
    x = np.random.default_rng(0).standard_normal((1, 9, 9)).astype(np.float32)
    got = pooled_last.run_lattice(x, (0, 0), (3, 3), (3, 3))
    np.testing.assert_array_equal(got[0], np.maximum.reduce(
        [x[0, a:a + 7:3, b:b + 7:3] for a in (0, 1) for b in (0, 1)]))
    padded = np.random.default_rng(1).standard_normal((1, 30, 30)).astype(np.float32)
    block = dense.run_block(padded, (1, 2), (7, 7))
    np.testing.assert_array_equal(dense.run_lattice(padded, (1, 2), (3, 3), (3, 3)),
                                  block[:, ::3, ::3])


def test_a_huge_weight_is_packed_once_for_the_plan(monkeypatch):
    # a first Linear of 500 x 2352 (a 500 x 48 x 7 x 7 convolution densely): the C
    # backend would pack its weight again for every window; the plan packs it once,
    # keeps it, and gets the same bits (the Tanh after it applied to each finished tile)
    from fastseg import nn
    from fastseg._cy import _runtime

    fastseg.seed(3)
    net = nn.Sequential(nn.Conv2d(1, 48, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2352, 500),
                        nn.Tanh(), nn.Linear(500, 2))
    net.eval()
    image = image_of(1, 21, 19)
    packed = segment(net, image, method="direct", tile=8)
    kept = fcn._cache[0][1]
    held = dict(kept._packed)
    assert list(held) == [("c", 2)]  # the first Linear, as step 2
    np.testing.assert_array_equal(segment(net, image, method="direct", tile=8),
                                  packed)
    assert kept._packed[("c", 2)] is held[("c", 2)]  # reused across calls and windows
    with monkeypatch.context() as m:
        m.setattr(fcn.DensePlan, "packed_weight", lambda self, i, table: None)
        np.testing.assert_array_equal(
            segment(net, image, method="direct", tile=8), packed)
    try:  # other kernels (the tuner's deep K block): packed again, for them
        _runtime.set_deep_kc(2048 if _runtime.deep_kc()["kc"] != 2048 else 1024)
        again = segment(net, image, method="direct", tile=8)
        assert kept._packed[("c", 2)] is not held[("c", 2)]
        with monkeypatch.context() as m:
            m.setattr(fcn.DensePlan, "packed_weight", lambda self, i, table: None)
            np.testing.assert_array_equal(
                segment(net, image, method="direct", tile=8), again)
    finally:
        _runtime.set_deep_kc(0)
    np.testing.assert_allclose(again, packed, atol=1e-5)
    # the NumPy backend packs nothing and computes the same map
    backends.set_backend("numpy")
    try:
        np.testing.assert_allclose(segment(net, image, method="direct", tile=8), packed,
                                   atol=1e-5)
    finally:
        backends.set_backend("c")


def test_old_spectra_and_packed_weights_are_let_go_before_new_ones_are_made(monkeypatch):
    # one set of kernel spectra (394 MB on lai2d) at a time: an image of another size
    # takes other FFT shapes, and the old spectra must be gone when the new are made,
    # or the process holds both at its peak (1.4 GB on lai2d); the same for a huge
    # weight packed again for other kernels
    from fastseg import nn
    from fastseg._cy import _runtime

    dense = fcn.plan(tiny_net(1, 9), 9)
    first = weakref.ref(dense.spectra(0, (6, 6), 1))
    alive = []

    def spy(make, ref):
        def made(*args, **kwargs):
            alive.append(ref() is not None)
            return make(*args, **kwargs)
        return made

    monkeypatch.setattr(fcn.fftconv, "KernelSpectra", spy(fcn.fftconv.KernelSpectra, first))
    assert dense.spectra(0, (8, 9), 1).fft_shape == (8, 9)
    assert alive == [False]

    fastseg.seed(3)
    huge = fcn.plan(nn.Sequential(nn.Conv2d(1, 48, 3), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(2352, 500), nn.Tanh(), nn.Linear(500, 2)), 9)
    table = backends.table("c")
    packed = weakref.ref(huge.packed_weight(2, table).data)  # the packed floats
    assert packed() is not None
    monkeypatch.setattr(table, "conv2d_weight_packed", spy(table.conv2d_weight_packed, packed))
    try:  # other kernels: packed again
        _runtime.set_deep_kc(2048 if _runtime.deep_kc()["kc"] != 2048 else 1024)
        assert huge.packed_weight(2, table) is not None
    finally:
        _runtime.set_deep_kc(0)
    assert alive == [False, False]


def test_class1_probability_is_the_softmax_of_the_transposed_logits_bit_for_bit():
    # segment's probabilities come from the logits' own rows; they must stay the bits of
    # the (pixels, classes) softmax every backend's ops.softmax gives on the host
    rng = np.random.default_rng(5)
    for classes, scale in [(2, 1.0), (2, 60.0), (3, 8.0), (9, 1e4)]:
        logits = (rng.standard_normal((classes, 37, 23)) * scale).astype(np.float32)
        logits[:, 0, :4] = logits[0, 0, :4]  # ties between the classes
        logits[0, 1, :3] = -np.inf
        want = fastseg.ops.softmax(logits.reshape(classes, -1).T, backend="numpy")[:, 1]
        got = fcn.class1_probability(logits)
        assert got.shape == (37, 23) and got.dtype == np.float32
        np.testing.assert_array_equal(got.ravel(), want)
        # a strided view of the logits (every other column) gives the same as its copy
        view = logits[:, :, ::2]
        np.testing.assert_array_equal(fcn.class1_probability(view),
                                      fcn.class1_probability(view.copy()))
    three_d = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(fcn.class1_probability(three_d),
                               1 / (1 + np.exp(three_d[0] - three_d[1])), rtol=1e-6)
