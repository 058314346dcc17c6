"""fastseg.export: ONNX models that ONNX Runtime and OpenVINO run with fastseg's answers.

The patch form against ``net(x)``, the dense form against ``fastseg.segment`` (and
against the patch cutter itself on images smaller than the padding), every refusal,
the metadata, and ``fastseg export`` end to end. The engines come with the ``onnx``
extra, which the test run installs; only the dependency check runs without them.
"""
import json
import sys

import numpy as np
import pytest

import fastseg
from fastseg import models, nn
from fastseg.cli import main
from fastseg.data import patches_at
from fastseg.errors import InvalidTypeError, InvalidValueError, MissingDependencyError
from fastseg.export import to_onnx

TOL = 1e-5


def _onnxruntime(path, feeds):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the machine is shared; these nets are tiny
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _openvino(path, feeds):
    ov = pytest.importorskip("openvino")
    # f32 on purpose: on CPUs with bf16 units OpenVINO would otherwise compute in bf16.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "INFERENCE_NUM_THREADS": 1})
    return compiled(feeds)[compiled.output(0)]


ENGINES = {"onnxruntime": _onnxruntime, "openvino": _openvino}


@pytest.fixture(params=list(ENGINES))
def engine(request):
    return ENGINES[request.param]


@pytest.fixture(autouse=True)
def _weights():
    fastseg.seed(0)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pooled_net(in_channels=2, act=nn.ReLU):
    """A 2-D patch classifier (patch 12) with a stride-2 and a stride-1 pooling, so the
    dense form needs dilations 1, 2 and 2, and three classes after two hidden layers."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3), act(), nn.MaxPool2d(2, 1), nn.Flatten(),
        nn.Linear(5 * 2 * 2, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 6), nn.Sigmoid(),
        nn.Linear(6, 3)).eval()


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


# ---- the patch classifier -----------------------------------------------------------------


def test_patch_lai2d(tmp_path, engine):
    net = models.lai2d(hidden=16).eval()
    x = _rand(5, 1, 24, 24)
    path = to_onnx(net, tmp_path / "lai2d.onnx")
    assert path == tmp_path / "lai2d.onnx"
    np.testing.assert_allclose(engine(path, {"patch": x}), net(x), rtol=0, atol=TOL)


def test_patch_lai3d(tmp_path, engine):
    net = models.lai3d(patch_size=14, conv_channels=(3, 4), hidden=8).eval()
    x = _rand(3, 1, 14, 14, 14)
    path = to_onnx(net, tmp_path / "lai3d.onnx")
    np.testing.assert_allclose(engine(path, {"patch": x}), net(x), rtol=0, atol=TOL)


def test_patch_triplanar_takes_three_inputs(tmp_path, engine):
    net = models.lai_triplanar(patch_size=12, conv_channels=(3, 4), hidden=8).eval()
    xs = [_rand(4, 1, 12, 12, seed=i) for i in range(3)]
    path = to_onnx(net, tmp_path / "tri.onnx")
    feeds = {f"patch_{i}": x for i, x in enumerate(xs)}
    np.testing.assert_allclose(engine(path, feeds), net(xs), rtol=0, atol=TOL)


def test_patch_whole_image_network(tmp_path, engine):
    net = models.seo_whole_image(image_size=(16, 12), conv_channels=(3, 4), hidden=(8,)).eval()
    x = _rand(2, 1, 16, 12)
    path = to_onnx(net, tmp_path / "seo.onnx")
    np.testing.assert_allclose(engine(path, {"image": x}), net(x), rtol=0, atol=TOL)


def test_patch_xsin_padding_and_stride(tmp_path):
    # Layers the report's nets do not use: x sin x, a padded and a strided convolution.
    net = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.XSin(), nn.Flatten(),
                        nn.Linear(3 * 5 * 5, 2)).eval()
    x = _rand(3, 1, 9, 9)
    path = to_onnx(net, tmp_path / "x.onnx")
    np.testing.assert_allclose(_onnxruntime(path, {"patch": x}), net(x), rtol=0, atol=TOL)


# ---- the dense form -----------------------------------------------------------------------


def test_dense_2d_equals_segment(tmp_path, engine):
    net = _pooled_net()
    image = _rand(2, 23, 31)
    want = fastseg.segment(net, image, method="direct", scale=1, progress=False)
    path = to_onnx(net, tmp_path / "dense.onnx", dense=True)
    prob = engine(path, {"image": image[None]})
    assert prob.shape == (1, 3, 23, 31)
    np.testing.assert_allclose(prob[0, 1], want, rtol=0, atol=TOL)  # borders included
    np.testing.assert_allclose(prob.sum(axis=1), 1, atol=TOL)


def test_dense_3d_equals_segment(tmp_path, engine):
    net = models.lai3d(patch_size=10, conv_channels=(3, 4), kernel_size=3, hidden=8).eval()
    volume = _rand(11, 13, 12)
    want = fastseg.segment(net, volume, method="direct", scale=1, progress=False)
    path = to_onnx(net, tmp_path / "dense3d.onnx", dense=True)
    prob = engine(path, {"image": volume[None, None]})
    assert prob.shape == (1, 2, 11, 13, 12)
    np.testing.assert_allclose(prob[0, 1], want, rtol=0, atol=TOL)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (1, 40), (17, 2)])
def test_dense_reflects_like_numpy_on_images_smaller_than_the_patch(tmp_path, shape):
    """numpy's "reflect" mirrors again and again where the image is smaller than the
    padding (and repeats an axis of 1): the graph's padding does the same."""
    net = _pooled_net(in_channels=1, act=nn.XSin)
    image = _rand(1, *shape)
    coords = np.argwhere(np.ones(shape, dtype=bool))
    want = _softmax(net(patches_at(image, coords, 12)).astype(np.float64))
    path = to_onnx(net, tmp_path / "small.onnx", dense=True)
    prob = _onnxruntime(path, {"image": image[None]})
    np.testing.assert_allclose(prob[0].reshape(3, -1).T, want, rtol=0, atol=TOL)


def test_dense_batch_of_images(tmp_path):
    net = models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8).eval()
    images = _rand(2, 1, 9, 14)
    path = to_onnx(net, tmp_path / "batch.onnx", dense=True)
    prob = _onnxruntime(path, {"image": images})
    for i in range(2):
        want = fastseg.segment(net, images[i], method="direct", scale=1, progress=False)
        np.testing.assert_allclose(prob[i, 1], want, rtol=0, atol=TOL)


def test_dense_with_the_image_shape_fixed(tmp_path):
    """A deployment on one image size fixes the free dimensions; the padding's index
    arithmetic must then still be scalars where ONNX wants them (shape inference)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8).eval()
    path = to_onnx(net, tmp_path / "fixed.onnx", dense=True)
    model = onnx.load(path)
    for dim, n in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 1, 8, 11),
                      strict=True):
        dim.dim_value = n
    onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for name, n in (("batch", 1), ("height", 8), ("width", 11)):
        options.add_free_dimension_override_by_name(name, n)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    image = _rand(1, 8, 11)
    want = fastseg.segment(net, image, method="direct", scale=1, progress=False)
    prob = session.run(None, {"image": image[None]})[0]
    np.testing.assert_allclose(prob[0, 1], want, rtol=0, atol=TOL)


# ---- sources, metadata, refusals ----------------------------------------------------------


def test_metadata_and_model_file_and_segmenter(tmp_path):
    onnx = pytest.importorskip("onnx")
    net = models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8)
    fastseg.save(net, tmp_path / "m.fseg")
    model = onnx.load(to_onnx(tmp_path / "m.fseg", tmp_path / "m.onnx", dense=True))
    props = {p.key: p.value for p in model.metadata_props}
    assert model.producer_name == "fastseg" and model.producer_version == fastseg.__version__
    assert props["kind"] == "image" and props["patch_size"] == "12"
    assert props["dense"] == "true" and props["num_classes"] == "2"
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["probabilities"]

    seg = fastseg.Segmenter.load(tmp_path / "m.fseg")
    model = onnx.load(to_onnx(seg, tmp_path / "s.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["dense"] == "false" and json.loads(props["segmenter"])["patch_size"] == 12

    with pytest.raises(InvalidValueError, match="not fitted"):
        to_onnx(fastseg.Segmenter(), tmp_path / "u.onnx")


def test_volume_kind_recorded(tmp_path):
    onnx = pytest.importorskip("onnx")
    net = models.lai_triplanar(patch_size=12, conv_channels=(3, 4), hidden=8)
    props = {p.key: p.value for p in onnx.load(to_onnx(net, tmp_path / "t.onnx")).metadata_props}
    assert props["kind"] == "triplanar" and props["patch_size"] == "12"


@pytest.mark.parametrize("build, match", [
    (lambda: models.lai_triplanar(patch_size=12, conv_channels=(3, 4), hidden=8),
     "Parallel.*tri-planar"),
    (lambda: models.seo_whole_image(image_size=(16, 16)), "PixelLogits.*whole-image"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(50, 2)),
     "Conv2d.*padding > 0"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 1)),
     "at least 2 classes"),
])
def test_dense_refusals_name_the_layer_and_why(tmp_path, build, match):
    out = tmp_path / "no.onnx"
    with pytest.raises(InvalidValueError, match=match):
        to_onnx(build(), out, dense=True)
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_refusals_of_any_form(tmp_path):
    out = tmp_path / "no.onnx"
    with pytest.raises(InvalidValueError, match="MSELoss.*no ONNX form"):
        to_onnx(nn.MSELoss(), out)
    with pytest.raises(InvalidValueError, match="no convolution"):
        to_onnx(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), out)
    with pytest.raises(InvalidValueError, match="Linear.*takes 51 features"):
        to_onnx(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(51, 2)), out)
    net = models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8)
    with pytest.raises(InvalidValueError, match="opset: must be >= 13"):
        to_onnx(net, out, opset=12)
    with pytest.raises(InvalidTypeError, match="opset"):
        to_onnx(net, out, opset=17.0)
    with pytest.raises(InvalidTypeError, match="dense"):
        to_onnx(net, out, dense="yes")
    with pytest.raises(InvalidTypeError, match="model"):
        to_onnx(42, out)
    with pytest.raises(FileNotFoundError, match="folder"):
        to_onnx(net, tmp_path / "missing" / "m.onnx")
    assert not out.exists()


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "fastseg\[onnx\]"'):
        to_onnx(models.lai2d(hidden=8), tmp_path / "m.onnx")


# ---- the command line ---------------------------------------------------------------------


@pytest.fixture
def model_files(tmp_path):
    fastseg.save(models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8),
                 tmp_path / "m.fseg")
    fastseg.save(models.lai_triplanar(patch_size=12, conv_channels=(3, 4), hidden=8),
                 tmp_path / "t.fseg")
    (tmp_path / "notes.txt").write_text("not a model")
    return tmp_path


def test_cli_export(model_files, capsys):
    d = model_files
    assert main(["export", str(d / "m.fseg"), str(d / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out and (d / "m.onnx").stat().st_size > 0
    assert main(["export", str(d / "m.fseg"), str(d / "d.onnx"), "--dense"]) == 0
    assert "dense" in capsys.readouterr().out
    image = _rand(1, 7, 9)
    prob = _onnxruntime(d / "d.onnx", {"image": image[None]})[0, 1]
    want = fastseg.segment(fastseg.load(d / "m.fseg"), image, method="direct", scale=1,
                           progress=False)
    np.testing.assert_allclose(prob, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("args, message", [
    (["missing.fseg", "o.onnx"], "No such file"),
    (["notes.txt", "o.onnx"], "not a fastseg file"),
    (["t.fseg", "o.onnx", "--dense"], "tri-planar"),
    (["m.fseg", "o.onnx", "--opset", "3"], "opset"),
])
def test_cli_errors_are_one_line(model_files, capsys, args, message):
    d = model_files
    argv = ["export", str(d / args[0]), str(d / args[1]), *args[2:]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastseg export: error:") and message in err
    assert err.count("\n") == 1 and not (d / "o.onnx").exists()


def test_cli_missing_dependency(model_files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(model_files / "m.fseg"), str(model_files / "o.onnx")]) == 2
    assert 'pip install "fastseg[onnx]"' in capsys.readouterr().err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--help"])
    assert info.value.code == 0 and "--dense" in capsys.readouterr().out
