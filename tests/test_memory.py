"""The memory budget (issue 24): sizes, where the limit comes from, the estimates' checks,
the smaller-tile fallback and the refusals (library, command line, training)."""
import numpy as np
import pytest
from _segment_helpers import image_of, tiny_net, usable_backend  # noqa: F401

import fastseg
from fastseg import _memory, cli, models, nn, optim, train
from fastseg._inference import cost, dispatch, fcn, tiles
from fastseg._inference import volume as volume_mod
from fastseg.data import make_cutter
from fastseg.errors import InvalidTypeError, InvalidValueError, MemoryBudgetError

G, M = 2**30, 2**20


@pytest.fixture(autouse=True)
def no_limit(monkeypatch):
    """Each test starts with no limit set and no FASTSEG_MEMORY_LIMIT; both restored (the
    command line exports --memory-limit to the environment: setenv records what to put
    back, where delenv of a missing variable records nothing)."""
    monkeypatch.setenv(_memory.ENV, "off")
    monkeypatch.delenv(_memory.ENV)
    _memory.set_limit(None)
    yield
    _memory.set_limit(None)


def room(monkeypatch, limit):
    """Make `limit` bytes the room every check sees (nothing held), whatever the machine."""
    monkeypatch.setattr(_memory, "budget", lambda: _memory.Budget(limit, "test limit"))


# ---- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("8G", 8 * G), ("8g", 8 * G), ("512M", 512 * M), ("1.5GiB", 3 * G // 2), ("2 MiB", 2 * M),
    ("64K", 64 * 1024), ("1kB", 1000), ("2GB", 2 * 10**9), ("1T", 2**40), ("4000000000", 4 * 10**9),
    ("1e9", 10**9), ("100b", 100), (" 3M ", 3 * M), (12345, 12345), (2.5e9, 2_500_000_000),
])
def test_sizes_parse(text, expected):
    assert _memory.parse_size(text) == expected


@pytest.mark.parametrize("text", ["off", "OFF", "none", "unlimited"])
def test_off_checks_nothing(text, monkeypatch):
    assert _memory.parse_size(text) is None
    monkeypatch.setenv(_memory.ENV, text)
    assert _memory.budget() is None and fastseg.get_memory_limit() is None


@pytest.mark.parametrize("bad", ["", "lots", "12Q", "-1G", "0", "0.1", "nan", "inf", "1e999",
                                 "8 G B", "G", "1.2.3M", 0, -5, float("nan"), float("inf")])
def test_bad_sizes_are_named(bad):
    with pytest.raises(InvalidValueError, match=r"^FASTSEG_MEMORY_LIMIT: expected a size"):
        _memory.parse_size(bad, "FASTSEG_MEMORY_LIMIT")


@pytest.mark.parametrize("bad", [True, [1], None.__class__])
def test_bad_size_types_are_named(bad):
    with pytest.raises(InvalidTypeError, match="^limit: expected a size in bytes"):
        fastseg.set_memory_limit(bad)


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(_memory.ENV, "a lot")
    with pytest.raises(InvalidValueError, match=r"FASTSEG_MEMORY_LIMIT: .*got 'a lot'"):
        fastseg.segment(tiny_net(), image_of(1, 20, 20))
    with pytest.raises(InvalidValueError, match="^limit: expected a size"):
        fastseg.set_memory_limit("8X")


# ---- where the limit comes from -----------------------------------------------------------------


def test_set_limit_beats_environment_beats_available(monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda: (5 * G, "the memory available (x)"))
    assert _memory.limit() == (5 * G, "the memory available (x)")
    b = _memory.budget()
    assert b.limit == 5 * G and b.held == 0  # MemAvailable leaves out what is held already
    monkeypatch.setenv(_memory.ENV, "3G")
    assert _memory.limit() == (3 * G, _memory.ENV)
    fastseg.set_memory_limit("2G")
    assert _memory.limit() == (2 * G, "fastseg.set_memory_limit")
    assert fastseg.get_memory_limit() == 2 * G
    b = _memory.budget()  # a set limit counts what the process holds against it
    assert b.held > 10 * M and b.room == 2 * G - b.held
    fastseg.set_memory_limit("off")  # off, even with the environment saying otherwise
    assert _memory.budget() is None
    fastseg.set_memory_limit(None)  # forgotten: back to the environment
    assert _memory.limit() == (3 * G, _memory.ENV)


def test_unknown_available_memory_checks_nothing(monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda: None)
    assert _memory.budget() is None
    monkeypatch.setattr(dispatch, "image_need", lambda *a: pytest.fail("estimated"))
    assert fastseg.segment(tiny_net(), image_of(1, 16, 16)).shape == (16, 16)


def test_available_memory_is_read_here():
    found = _memory.available_bytes()
    assert found is not None  # Linux: MemAvailable at least
    assert 0 < found[0] < 2**50 and found[1].startswith("the memory available")
    assert _memory.resident_bytes() > M


def test_format_bytes():
    assert _memory.format_bytes(1536 * M) == "1.5 GiB"
    assert _memory.format_bytes(312 * M) == "312 MiB"
    assert _memory.format_bytes(40 * 1024) == "40 kiB"
    assert _memory.format_bytes(12) == "12 B"


# ---- images: refusal and the smaller tile --------------------------------------------------------


def test_refusal_names_estimate_limit_and_source():
    fastseg.set_memory_limit("1M")  # below what the process holds already
    with pytest.raises(MemoryBudgetError) as info:
        fastseg.segment(tiny_net(), image_of(1, 40, 40))
    err = info.value
    text = str(err)
    assert isinstance(err, MemoryError) and isinstance(err, fastseg.errors.FastsegError)
    assert text.startswith("segment: a 40x40 image needs about ")
    assert "estimated before starting" in text and "memory limit is 1 MiB" in text
    assert "(fastseg.set_memory_limit)" in text and "FASTSEG_MEMORY_LIMIT=SIZE" in text
    assert "\n" not in text
    assert err.limit == M and err.source == "fastseg.set_memory_limit"
    assert err.estimate > 4 * 40 * 40  # the probability map at least


def _needs(dense, hw, method="auto"):
    auto = cost.schedule(dense, hw, method)
    need = {t: dispatch.image_need(dense, hw, hw, cost.schedule(dense, hw, method, t))
            for t in tiles.smaller_tiles(auto.tile, dense.stride)}
    return auto.tile, dispatch.image_need(dense, hw, hw, auto), need


def test_smaller_tile_taken_and_same_map(monkeypatch):
    net = models.lai2d(patch_size=12, conv_channels=(4, 6), kernel_size=3, hidden=300)
    image = image_of(1, 160, 150, seed=3)
    dense = fcn.cached_plan(net, 12, "segment")
    full = fastseg.segment(net, image, method="direct")
    auto, need, smaller = _needs(dense, (160, 150), "direct")
    fits = [t for t, n in smaller.items() if n < need]
    assert fits, (auto, need, smaller)  # the smaller tiles need less
    limit = need - 1
    taken = []
    real = dispatch.image_probability
    monkeypatch.setattr(dispatch, "image_probability",
                        lambda d, s, m, tile, *a, **k: taken.append(tile) or real(d, s, m, tile,
                                                                                  *a, **k))
    room(monkeypatch, limit)
    prob = fastseg.segment(net, image, method="direct")
    assert taken and taken[0] is not None and taken[0] < auto
    assert smaller[taken[0]] <= limit
    # The largest smaller tile that fits: none between it and the automatic one does.
    assert all(n > limit for t, n in smaller.items() if t > taken[0])
    np.testing.assert_allclose(prob, full, atol=1e-5, rtol=0)


def test_no_tile_fits_refused(monkeypatch):
    room(monkeypatch, 4096)
    with pytest.raises(MemoryBudgetError, match="even its smallest tiles do not fit.*--scale"):
        fastseg.segment(tiny_net(), image_of(1, 30, 30))


def test_tile_asked_for_is_kept_or_refused(monkeypatch):
    net, image = tiny_net(), image_of(1, 64, 64)
    dense = fcn.cached_plan(net, 9, "segment")
    need = dispatch.image_need(dense, (64, 64), (64, 64), cost.schedule(dense, (64, 64), "auto",
                                                                         32))
    room(monkeypatch, need - 1)  # no other tile instead of the one asked for
    with pytest.raises(MemoryBudgetError, match="use a smaller tile than 32"):
        fastseg.segment(net, image, tile=32)


# ---- volumes and scans --------------------------------------------------------------------------


def _tiny3d():
    fastseg.seed(11)
    return models.lai3d(patch_size=8, conv_channels=(3, 4), kernel_size=3, hidden=6)


def test_volume_smaller_block_same_map(monkeypatch):
    net = _tiny3d()
    vol = np.random.default_rng(2).standard_normal((20, 22, 18)).astype(np.float32)
    cutter = make_cutter("3d", 8)
    full = fastseg.segment(net, vol, cutter=cutter)
    dense = volume_mod.check_fits_network(net, cutter, "segment")
    auto = cost.schedule(dense, vol.shape, "auto").tile
    need = volume_mod.volume_bytes(net, vol.shape, cutter)
    assert volume_mod.volume_bytes(net, vol.shape, cutter, tile=4) < need
    room(monkeypatch, need - 1)
    blocks = []
    real = volume_mod._cubes
    monkeypatch.setattr(volume_mod, "_cubes",
                        lambda d, a, m, c, tile, *r: blocks.append(tile) or real(d, a, m, c, tile,
                                                                                 *r))
    prob = fastseg.segment(net, vol, cutter=cutter)
    assert blocks and blocks[0] is not None and blocks[0] < auto
    assert volume_mod.volume_bytes(net, vol.shape, cutter, tile=blocks[0]) < need
    np.testing.assert_allclose(prob, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["2d", "stacked2d", "3d", "triplanar"])
def test_every_volume_kind_refused_before_work(kind, monkeypatch):
    fastseg.seed(11)
    small = {"conv_channels": (3, 4), "kernel_size": 3, "hidden": 6, "patch_size": 8}
    net = {"2d": models.lai2d, "stacked2d": models.lai_stacked2d, "3d": models.lai3d,
           "triplanar": models.lai_triplanar}[kind](**small)
    vol = np.zeros((9, 10, 11), np.float32)
    cutter = make_cutter(kind, 8)
    need = volume_mod.volume_bytes(net, vol.shape, cutter)
    assert need > 4 * vol.size  # the map at least
    room(monkeypatch, 1000)
    monkeypatch.setattr(fcn.DensePlan, "run_block", lambda *a, **k: pytest.fail("worked"))
    with pytest.raises(MemoryBudgetError, match=rf"a 9x10x11 volume \({kind} kind\) needs "):
        fastseg.segment(net, vol, cutter=cutter)


def test_scan_refusal_counts_its_copies(monkeypatch):
    pytest.importorskip("nibabel")
    pytest.importorskip("scipy")
    net = _tiny3d()
    vol = np.random.default_rng(1).standard_normal((16, 18, 20)).astype(np.float32)
    cutter = make_cutter("3d", 8)
    affine = np.diag([1.25, 1.25, 1.25, 1.0])
    shape = fastseg.data.conform(vol, affine).shape  # at 1 mm
    assert shape == (20, 23, 25)
    dense_need = volume_mod.volume_bytes(net, shape, cutter)
    seen = []
    real = volume_mod.tile_within
    monkeypatch.setattr(volume_mod, "tile_within",
                        lambda need_of, *a: seen.append(need_of(None, "auto")) or real(need_of,
                                                                                      *a))
    fastseg.segment(net, vol, cutter=cutter, affine=affine)
    # The scan's check first: the segmentation and the map brought back to 16x18x20.
    assert seen[0] >= dense_need and seen[0] >= 4 * 20 * 23 * 25 + 12 * vol.size
    assert dense_need in seen[1:]  # then segment_volume's own
    room(monkeypatch, 1000)
    with pytest.raises(MemoryBudgetError, match=r"a 20x23x25 scan \(3d kind\) needs about"):
        fastseg.segment(net, vol, cutter=cutter, affine=affine)


# ---- training -----------------------------------------------------------------------------------


def test_step_bytes_formula():
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 2))
    x = np.zeros((5, 10), np.float32)
    acts, largest = 4 * (5 * 20 + 5 * 20 + 5 * 2), 4 * 5 * 20
    weights = 4 * (200 + 20 + 40 + 2)
    plain = train.step_bytes(net, x, optim.SGD(net.parameters(), lr=0.1))
    assert plain == acts + 2 * largest + weights + x.nbytes
    adam = optim.Adam(net.parameters())
    assert train.step_bytes(net, x, adam) == plain + 2 * weights
    momentum = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    assert train.step_bytes(net, x, momentum) == plain + weights
    # Pooling keeps its argmax (int64), dropout its mask; unknown layers: no estimate.
    pooled = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Dropout(0.5))
    got = train.step_bytes(pooled, np.zeros((3, 1, 8, 8), np.float32))
    conv, pool = 4 * 3 * 2 * 6 * 6, 4 * 3 * 2 * 3 * 3
    assert got == conv + 3 * pool + 2 * pool + 2 * conv + 4 * (2 * 9 + 2) + 4 * 3 * 64

    class Odd(nn.Module):
        def forward(self, x):
            return x
    assert train.step_bytes(nn.Sequential(Odd()), x) is None


def test_training_refused_before_the_first_step():
    net = models.lai2d(patch_size=12, conv_channels=(4, 6), kernel_size=3, hidden=20)
    opt = optim.Adam(net.parameters())
    before = [p.data.copy() for p in net.parameters()]
    x = np.zeros((64, 1, 12, 12), np.float32)
    y = np.zeros(64, np.int64)
    fastseg.set_memory_limit("1M")
    with pytest.raises(MemoryBudgetError, match=r"^fit: a training step on a batch of 64 "
                       r"patches \(64, 1, 12, 12\) needs about .*smaller batch"):
        train.fit(net, [(x, y)], nn.CrossEntropyLoss(), opt, progress=False)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, net.parameters(), strict=True))
    assert not opt.state
    fastseg.set_memory_limit("off")
    history = train.fit(net, [(x, y)], nn.CrossEntropyLoss(), opt, progress=False)
    assert len(history["step_loss"]) == 1


# ---- command line -------------------------------------------------------------------------------


def test_cli_memory_limit_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    net = models.lai2d(patch_size=12, conv_channels=(4, 6), kernel_size=3, hidden=20)
    fastseg.save(net, tmp_path / "model.fseg")
    Image.fromarray(np.full((40, 48), 90, np.uint8)).save(tmp_path / "a.png")
    code = cli.main(["segment", str(tmp_path / "model.fseg"), str(tmp_path / "a.png"),
                     "--out", str(tmp_path / "out"), "--memory-limit", "1M"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1
    assert err.startswith("fastseg segment: error: ")
    assert "needs about" in err and "memory limit is 1 MiB (--memory-limit)" in err
    assert not list((tmp_path / "out").glob("a_*.png"))


def test_cli_bad_memory_limit(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["segment", "m.fseg", "a.png", "--out", "o", "--memory-limit", "12Q"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --memory-limit: expected a size such as 8G" in err and "'12Q'" in err
