"""fastseg.save/load and the array file format: round trips and refused files."""
import io as _io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastseg
from fastseg import backends, models, nn
from fastseg import io as fio


@pytest.fixture(autouse=True)
def backend(monkeypatch):
    name = "c" if "c" in fastseg.available_backends() else "numpy"
    backends.load(name)
    monkeypatch.setattr(backends, "_current", name)
    fastseg.seed(0)


def tiny():
    return models.lai2d(patch_size=10, conv_channels=(3, 4), hidden=8, dropout=0.1)


@pytest.mark.parametrize("make,inputs", [
    (tiny, lambda r: r.standard_normal((3, 1, 10, 10))),
    (lambda: models.lai_triplanar(patch_size=8, conv_channels=(2,), hidden=4),
     lambda r: [r.standard_normal((2, 1, 8, 8)) for _ in range(3)]),
    (lambda: models.seo_whole_image((8, 8), conv_channels=(2,), hidden=(4,)),
     lambda r: r.standard_normal((2, 1, 8, 8))),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False), nn.Sigmoid(),
                           nn.MaxPool2d(2, stride=1), nn.Flatten()),
     lambda r: r.standard_normal((1, 1, 7, 7))),
    (lambda: models.lai2d(patch_size=8, conv_channels=(2,), hidden=4, conv_activation="xsin"),
     lambda r: r.standard_normal((2, 1, 8, 8))),
])
def test_save_load_round_trip(tmp_path, make, inputs):
    net = make().eval()
    path = tmp_path / "model.fseg"
    fastseg.save(net, path)
    back = fastseg.load(str(path))
    assert repr(back) == repr(net) and not back.training
    x = inputs(np.random.default_rng(0))
    np.testing.assert_array_equal(back(x), net(x))
    assert os.listdir(tmp_path) == ["model.fseg"]  # no temporary left behind


def test_custom_module_cannot_be_saved(tmp_path):
    class Mine(nn.Sequential):
        pass

    with pytest.raises(ValueError, match="cannot describe"):
        fastseg.save(Mine(nn.ReLU()), tmp_path / "x.fseg")
    assert not (tmp_path / "x.fseg").exists()


def test_arrays_and_tree_round_trip(tmp_path):
    arrays = {"a.b": np.arange(6, dtype=np.int64).reshape(2, 3), "m": np.array([True, False])}
    fio.save_arrays(tmp_path / "f", arrays, {"note": "hi"}, format="thing", version=3)
    header, back = fio.load_arrays(tmp_path / "f", format="thing", max_version=3)
    assert header["meta"] == {"note": "hi"} and header["version"] == 3
    assert all(np.array_equal(back[k], v) and back[k].dtype == v.dtype
               for k, v in arrays.items())
    tree = {"state": {0: {"step": 2, "buf": np.ones(3, np.float32)}}, "lr": 0.1, "x": [1, None]}
    fio.save_tree(tmp_path / "t", tree, format="tree")
    got, version = fio.load_tree(tmp_path / "t", format="tree")
    assert version == 1 and got["lr"] == 0.1 and got["x"] == [1, None]
    np.testing.assert_array_equal(got["state"][0]["buf"], tree["state"][0]["buf"])
    with pytest.raises(TypeError, match="pickle"):
        fio.save_arrays(tmp_path / "o", {"o": np.array([object()])})


def test_saved_files_do_not_depend_on_when(tmp_path, monkeypatch):
    """Members carry zip's epoch, not the time of saving: the same model saved twice is
    the same bytes (a resumed training run ends with an uninterrupted run's files)."""
    import time

    net = tiny()
    fastseg.save(net, tmp_path / "a.fseg")
    later = time.time() + 86400 * 400
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(time, "localtime", lambda t=None: time.gmtime(later))
    fastseg.save(net, tmp_path / "b.fseg")
    assert (tmp_path / "a.fseg").read_bytes() == (tmp_path / "b.fseg").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.fseg") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.fseg"
    fastseg.save(tiny(), path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        fio.save_arrays(path, {"x": np.zeros(2)}, meta={"bad": object()})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.fseg"]


def _rewrite(src, dst, header_change=None, drop=(), add=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            data = zin.read(item.filename)
            if item.filename == "header.json" and header_change:
                header = json.loads(data)
                header_change(header)
                data = json.dumps(header).encode()
            zout.writestr(item.filename, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)


def _corrupt_cases(tmp_path, good):
    def arch(h, cls="Evil"):
        h["meta"]["architecture"]["children"][0][1]["class"] = cls

    cases = {}
    cases["empty"] = (b"", "empty")
    cases["truncated"] = (good.read_bytes()[: good.stat().st_size // 2], "truncated|damaged")
    cases["png"] = (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG")
    cases["pickle"] = (pickle.dumps({"0.weight": np.zeros(3)}), "pickle")
    cases["text"] = (b"hello world", "not a zip")
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "just a zip")
    cases["plain_zip"] = (buf.getvalue(), "no header.json")
    variants = {
        "wrong_version": (lambda h: h.update(version=fio.MODEL_VERSION + 1), "newer"),
        "bad_version": (lambda h: h.update(version="1"), "invalid format version"),
        "wrong_format": (lambda h: h.update(format="fastseg-checkpoint"), "expected a"),
        "unknown_class": (arch, "unknown class 'Evil'"),
        "dotted_class": (lambda h: arch(h, "os.system"), "unknown class"),
        "bad_args": (lambda h: h["meta"]["architecture"]["children"][0][1].update(
            args={"in_channels": 1, "evil": 2}), "cannot build"),
    }
    for name, (change, msg) in variants.items():
        dst = tmp_path / f"{name}.src"
        _rewrite(good, dst, header_change=change)
        cases[name] = (dst.read_bytes(), msg)
    dst = tmp_path / "missing_member.src"
    _rewrite(good, dst, drop=("arrays/00001.npy",))
    cases["missing_member"] = (dst.read_bytes(), "missing")
    obj = _io.BytesIO()
    np.save(obj, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    dst = tmp_path / "object_array.src"
    _rewrite(good, dst, drop=("arrays/00000.npy",), add={"arrays/00000.npy": obj.getvalue()})
    cases["object_array"] = (dst.read_bytes(), "not a plain .npy")
    return cases


def test_corrupt_and_foreign_files_refused(tmp_path):
    good = tmp_path / "good.fseg"
    fastseg.save(tiny(), good)
    for name, (data, message) in _corrupt_cases(tmp_path, good).items():
        path = tmp_path / f"{name}.fseg"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message) as err:
            fastseg.load(path)
        assert str(path) in str(err.value), name
    with pytest.raises(FileNotFoundError):
        fastseg.load(tmp_path / "nope.fseg")


def test_torch_file_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)  # a zip holding a pickle
    with pytest.raises(ValueError, match="not a fastseg file"):
        fastseg.load(path)
