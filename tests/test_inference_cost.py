"""fastseg._inference.cost: direct or FFT per convolution, FFT sizes and tiles, and the
method errors, named after the public function that asked."""
import numpy as np
import pytest
from _segment_helpers import image_of, tiny_net

import fastseg
from fastseg import models, nn, segment
from fastseg._inference import cost, fcn


def test_fft_runs_what_the_schedule_says(monkeypatch):
    """method="fft" puts every stride-1 convolution larger than 1x1 on the FFT
    path (the 1x1 last layer rides along, fused), "direct" none."""
    net = tiny_net(1, 9)
    dense = fcn.plan(net, 9)
    fft = cost.schedule(dense, (30, 30), "fft")
    convs = [i for i, s in enumerate(dense.steps) if isinstance(s, fcn.Conv)]
    assert sorted(fft.fft) == convs[:3]  # conv, conv, the Linear as a 5x5 conv
    assert not cost.schedule(dense, (30, 30), "direct").fft
    calls = []
    real = fcn.DensePlan._run_fft

    def spy(self, x, i, how, workers):
        calls.append(i)
        return real(self, x, i, how, workers)

    monkeypatch.setattr(fcn.DensePlan, "_run_fft", spy)
    segment(net, image_of(1, 12, 12), method="fft")
    assert sorted(set(calls)) == convs[:3]


def test_auto_takes_fft_for_lai2d_large_convolutions():
    """The fully connected layer (16x16) by FFT at every size, and on the fused 2-D kernel
    the 20->50 5x5 convolution too (measured 2.5x faster than direct on 584x565), never
    the first layer (one input channel); nothing by FFT on the GPU."""
    fastseg.seed(0)
    dense = fcn.plan(models.lai2d(), 24)
    kinds = [type(s).__name__ for s in dense.steps]
    assert kinds == ["Conv", "Act", "Conv", "Act", "Conv", "Act", "Conv"]
    for hw in ((584, 565), (1411, 1411), (4096, 4096)):
        plan = cost.schedule(dense, hw, "auto", threads=2, backend="c")
        assert sorted(plan.fft) == [2, 4], (hw, plan)
        shape = plan.fft[4].fft_shape
        assert cost.fc.KernelSpectra.nbytes_for(1000, 50, shape) \
            + cost.fc.KernelSpectra.nbytes_for(50, 20, plan.fft[2].fft_shape) \
            <= cost._spectra_budget(dense, hw) <= cost.SPECTRA_BUDGET_MAX
    whole = cost.schedule(dense, (584, 565), "auto", threads=2, backend="c")
    assert whole.tile >= 584  # one tile: no overlap recomputed
    tiny = fcn.plan(tiny_net(1, 9), 9)
    assert not cost.schedule(tiny, (40, 40), "auto", threads=2, backend="c").fft
    assert not cost.schedule(dense, (584, 565), "auto", backend="cuda").fft


def test_the_spectra_budget_grows_only_into_room_a_small_image_leaves():
    """Spectra, a full tile budget, the image's planes and the fixed part stay within the
    process budget wherever the spectra get more than the minimum; a large photo plans
    with the minimum, as before."""
    fastseg.seed(0)
    dense = fcn.plan(models.lai2d(), 24)
    budgets = {}
    for hw in ((192, 192), (584, 565), (1000, 1000), (2048, 2048), (4096, 4096)):
        budget = budgets[hw] = cost._spectra_budget(dense, hw)
        assert cost.SPECTRA_BUDGET_BYTES <= budget <= cost.SPECTRA_BUDGET_MAX
        if budget > cost.SPECTRA_BUDGET_BYTES:
            assert cost.FIXED_BYTES + cost._planes_bytes(dense, hw) + budget \
                + cost._fft_tile_budget(dense, hw) <= cost.PROCESS_BYTES
            assert cost._fft_tile_budget(dense, hw) == cost.FFT_TILE_BUDGET_BYTES
    assert budgets[(192, 192)] >= budgets[(584, 565)] > budgets[(1000, 1000)] \
        > budgets[(2048, 2048)] >= budgets[(4096, 4096)] == cost.SPECTRA_BUDGET_BYTES
    # 584x565 takes a longer transform than the minimum allows (fewer bins per pixel).
    big = cost.schedule(dense, (584, 565), "auto", threads=2, backend="c").fft[4].fft_shape
    assert cost.fc.KernelSpectra.nbytes_for(1000, 50, big) > cost.SPECTRA_BUDGET_BYTES
    assert cost.schedule(dense, (4096, 4096), "auto", threads=2,
                         backend="c").fft[4].fft_shape in [(40, 45), (36, 45)]
    # A memory limit set below the process budget leaves no room to grow into: the
    # minimum, the plan it gave before, and the two plans are kept apart.
    try:
        fastseg.set_memory_limit("800M")
        assert cost._spectra_budget(dense, (584, 565)) == cost.SPECTRA_BUDGET_BYTES
        limited = cost.schedule(dense, (584, 565), "auto", threads=2, backend="c")
        assert cost.fc.KernelSpectra.nbytes_for(1000, 50, limited.fft[4].fft_shape) \
            <= cost.SPECTRA_BUDGET_BYTES
    finally:
        fastseg.set_memory_limit(None)
    assert cost.schedule(dense, (584, 565), "auto", threads=2,
                         backend="c").fft[4].fft_shape == big


def test_settings_tuned_overridden_and_kept_apart(monkeypatch):
    """cost reads its tunables through fastseg.tuning.cache.get (a tuned value of the
    default's type, else the default); overrides() wins on its thread; schedules are
    kept per settings."""
    from fastseg.tuning import cache

    fastseg.seed(0)
    dense = fcn.plan(models.lai2d(hidden=40), 24)
    tuned = {}
    monkeypatch.setattr(cache, "choices", lambda: dict(tuned))
    assert cost.setting("fft.margin") == cost.SETTINGS["fft.margin"]
    base = cost.schedule(dense, (200, 190), "auto", threads=1, backend="c")
    tuned.update({"fft.mults": 4, "fft.lengths": [32, 64], "fft.chunk": "x", "fft.group": 20})
    assert cost.setting("fft.mults") == 4 and cost.setting("fft.chunk") == 0  # wrong type
    assert cost.setting("fft.group") == 0  # not tuned (cost.TUNED): an old cache's ignored
    four = cost.schedule(dense, (200, 190), "auto", threads=1, backend="c")
    assert four is not base and all(h.mults == 4 for h in four.fft.values())
    assert cost.setting("fft.lengths") == []  # not a tuned setting (cost.TUNED): ignored
    with cost.overrides({"fft.lengths": [32, 64]}):  # the tuner's candidates still apply
        short = cost.schedule(dense, (200, 190), "auto", threads=1, backend="c")
    assert all(set(h.fft_shape) <= {32, 64} or min(h.fft_shape) < 32
               for h in short.fft.values()), short
    assert any(not set(h.fft_shape) <= {32, 64} for h in four.fft.values()), four
    with cost.overrides({"fft.margin": 1e9}):
        assert cost.setting("fft.margin") == 1e9
        assert not cost.schedule(dense, (200, 190), "auto", threads=1, backend="c").fft
    assert cost.setting("fft.margin") == cost.SETTINGS["fft.margin"]
    with pytest.raises(ValueError, match="unknown settings"):
        with cost.overrides({"fft.speed": 1}):
            pass


def test_edge_tiles_cost_their_own_size():
    """A tile just past half the image costs its narrow edge tiles as what they are, so
    the whole image (one tile) wins over 300-pixel tiles of a 584x565 image."""
    fastseg.seed(0)
    dense = fcn.plan(models.lai2d(hidden=40), 24)
    classes = cost._tile_classes((584, 565), 300)
    assert sorted(classes) == [((284, 265), 1), ((284, 300), 1), ((300, 265), 1),
                               ((300, 300), 1)]
    assert cost._tile_classes((10, 10), 20) == [((10, 10), 1)]
    whole = cost._tile_plan(dense, 584, (584, 565), "auto", 2, True)[0]
    cut = cost._tile_plan(dense, 300, (584, 565), "auto", 2, True)[0]
    assert whole < cut


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
    dense = fcn.plan(tiny_net(1, 9), 9, caller="Segmenter.predict_proba")
    with pytest.raises(ValueError, match=r"^Segmenter.predict_proba: method='fft' runs on"):
        cost.schedule(dense, (12, 12), "fft", backend="cuda")
    padded = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 81, 2))
    with pytest.raises(ValueError, match=r"^Segmenter.predict_proba: cannot run"):
        fcn.plan(padded, 9, caller="Segmenter.predict_proba")
    with pytest.raises(ValueError, match=r"^segment: cannot run"):
        segment(padded, image, patch_size=9)


def test_2d_plans_and_bits_do_not_depend_on_threads():
    """2-D schedules are planned for one thread whatever the count (only `workers`
    follows it), and the fused kernel's results do not depend on it either: the same
    image gives the same bits on 1 and 2 threads."""
    fastseg.seed(0)
    net = models.lai2d(hidden=40).eval()
    dense = fcn.plan(net, 24)
    one = cost.schedule(dense, (150, 130), "auto", threads=1, backend="c")
    two = cost.schedule(dense, (150, 130), "auto", threads=2, backend="c")
    assert (one.tile, one.fft) == (two.tile, two.fft) and (one.workers, two.workers) == (1, 2)
    image = image_of(1, 70, 61, seed=3)
    fastseg.set_num_threads(1)
    a = segment(net, image, method="auto")
    fastseg.set_num_threads(2)
    b = segment(net, image, method="auto")
    assert a.tobytes() == b.tobytes()


def test_convolutions_the_fft_cannot_win_are_not_costed_and_nothing_changes(monkeypatch):
    """A convolution whose FFT epilogue alone (its floor) is no faster than running it
    directly gets no FFT shapes costed (lai2d's 1 -> 20 channels 5x5); every schedule,
    estimate included, is the one costing every shape gives."""
    dense = fcn.plan(models.lai2d(), 24)
    small = fcn.plan(tiny_net(3, 11), 11)
    cases = [(plan, hw, method, threads) for plan in (dense, small)
             for hw in [(13, 77), (96, 96), (192, 191), (584, 565)]
             for method in ("auto", "fft") for threads in (1, 2)]

    def schedules():
        out = []
        for plan, hw, method, threads in cases:
            plan._schedules.clear()
            s = cost.schedule(plan, hw, method, threads=threads)
            out.append((s.tile, sorted((i, f.fft_shape) for i, f in s.fft.items()),
                        s.estimate_s))
        return out

    costed = []
    real = cost._kernel_cost
    monkeypatch.setattr(cost, "_kernel_cost", lambda f, c, *a: costed.append(c) or
                        real(f, c, *a))
    dense._schedules.clear()
    cost.schedule(dense, (300, 200), "auto")
    assert 1 not in costed and 20 in costed  # lai2d's first layer skipped, its second not
    pruned = schedules()  # (method="fft" costs every layer: it takes the FFT anyway)
    costed.clear()
    monkeypatch.setattr(cost, "_kernel_cost_floor", lambda *a: 0.0)
    dense._schedules.clear()
    cost.schedule(dense, (300, 200), "auto")
    assert 1 in costed
    assert schedules() == pruned
