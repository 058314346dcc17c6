"""The benchmark cases run on every backend and compute the same thing.

Speed is never asserted here (that is bench/'s job); what is checked is that
each side of a comparison does the same arithmetic, so the ratios mean
something.
"""
import numpy as np
import pytest

from fastseg import benchmarks
from fastseg.benchmarks import timer

torch = pytest.importorskip("torch")

QUICK = benchmarks.all_cases(quick=True)
BACKENDS = [b for b in benchmarks.available_backends() if b in ("c", "numpy", "torch")]
ENGINE_CASES = [c for c in QUICK if c.engines]


def _as_numpy(out):
    if isinstance(out, tuple):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().numpy()
    return None if out is None else np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("case", QUICK, ids=[c.id for c in QUICK])
def test_every_backend_computes_the_same(case):
    results = {b: _as_numpy(case.prepare(b)()) for b in BACKENDS}
    assert {"c", "numpy", "torch"} <= set(results)
    if case.group in ("train-step", "conv2d-bwd", "linear-bwd", "conv3d-bwd"):
        return  # these return nothing comparable; that they ran is the check
    want = results["numpy"]
    for b, got in results.items():
        assert got.shape == want.shape, b
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=b)


def test_torch_twin_has_the_same_outputs():
    from fastseg import models
    from fastseg.benchmarks.networks import to_torch

    for model, shape in ((models.lai2d(patch_size=12, hidden=8), (3, 1, 12, 12)),
                         (models.seo_whole_image(image_size=(16, 16)), (2, 1, 16, 16)),
                         (models.lai3d(patch_size=14, conv_channels=(3, 4), hidden=8),
                          (2, 1, 14, 14, 14))):
        model.eval()
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            want = to_torch(model)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ENGINE_CASES, ids=[c.id for c in ENGINE_CASES])
@pytest.mark.parametrize("engine", benchmarks.ENGINES)
def test_engines_compute_what_fastseg_computes(case, engine):
    # The onnx extra is installed wherever the tests run, as torch is.
    assert engine in benchmarks.available_backends()
    got, want = _as_numpy(case.prepare(engine)()), _as_numpy(case.prepare("c")())
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_engines_run_only_the_cases_that_list_them():
    assert {c.group for c in ENGINE_CASES} == {"segment"}
    kernel = next(c for c in QUICK if c.group == "gemm")
    assert not any(kernel.runs_on(e) for e in benchmarks.ENGINES) and kernel.runs_on("c")


@pytest.mark.parametrize("threads", [1, 2])
def test_engine_sessions_take_the_thread_count(tmp_path, threads):
    from fastseg import models
    from fastseg.benchmarks import engines
    from fastseg.export import to_onnx

    path = to_onnx(models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8),
                   tmp_path / "m.onnx", dense=True)
    session = engines.onnxruntime_session(path, (1, 1, 9, 7), threads)
    assert session.get_session_options().intra_op_num_threads == threads
    compiled = engines.openvino_model(path, (1, 1, 9, 7), threads)
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == threads
    ov = pytest.importorskip("openvino")
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_table_shows_engines_only_where_they_ran():
    gemm = next(c for c in QUICK if c.group == "gemm")
    rows = timer.run_table([gemm, ENGINE_CASES[0]], ["c", "onnxruntime"], [1], repeats=1,
                           settle=0)
    assert "onnxruntime" not in rows[0]["seconds"] and "onnxruntime" in rows[1]["seconds"]
    text = timer.format_table(rows, ["c", "numpy", "onnxruntime"])
    assert "onnxruntime ms" in text and "c vs onnxruntime" in text and "numpy" not in text
    assert text.splitlines()[1].rstrip().endswith("-")  # gemm: no engine, no ratio
    assert timer.run_table([gemm], ["openvino"], [1], repeats=1, settle=0) == []


def test_table_reports_ratios():
    case = QUICK[0]
    rows = timer.run_table([case], ["c", "numpy"], [1], repeats=2, settle=0)
    text = timer.format_table(rows, ["c", "numpy"])
    assert "c vs numpy" in text and case.name in text
    assert rows[0]["seconds"]["c"] > 0 and rows[0]["gflops"]["numpy"] > 0


def test_alternate_interleaves_the_runners_and_takes_medians():
    now, calls, syncs = [0.0], [], []

    def runner(key, cost):
        def run():
            calls.append(key)
            now[0] += cost
        return run

    seconds = timer.alternate({"a": runner("a", 0.01), "b": runner("b", 0.03)}, repeats=3,
                              min_time=0.05, settle=0, clock=lambda: now[0],
                              sync=lambda: syncs.append(1))
    assert seconds == pytest.approx({"a": 0.01, "b": 0.03})
    # Warm-up and one calibration call each, then samples taking turns: a's of 5 calls
    # (0.05 s), b's of 1 call (0.03 s already lasts min_time... at least one call).
    assert calls[:4] == ["a", "a", "b", "b"]
    assert calls[4:] == (["a"] * 5 + ["b"]) * 3
    assert len(syncs) == 4 + 6  # after each warm-up/calibration call, then each sample
