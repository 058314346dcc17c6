"""The benchmark cases run on every backend and compute the same thing.

Speed is never asserted here (that is bench/'s job); what is checked is that
each side of a comparison does the same arithmetic, so the ratios mean
something.
"""
import numpy as np
import pytest

from fastseg import benchmarks

torch = pytest.importorskip("torch")

QUICK = benchmarks.all_cases(quick=True)
BACKENDS = [b for b in benchmarks.available_backends() if b in ("c", "numpy", "torch")]


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
    if case.group in ("train-step", "conv2d-bwd", "linear-bwd"):
        return  # these return nothing comparable; that they ran is the check
    want = results["numpy"]
    for b, got in results.items():
        assert got.shape == want.shape, b
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=b)


def test_torch_twin_has_the_same_outputs():
    from fastseg import models
    from fastseg.benchmarks_models import to_torch

    for model, shape in ((models.lai2d(patch_size=12, hidden=8), (3, 1, 12, 12)),
                         (models.seo_whole_image(image_size=(16, 16)), (2, 1, 16, 16))):
        model.eval()
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            want = to_torch(model)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-5)


def test_table_reports_ratios():
    case = QUICK[0]
    rows = benchmarks.run_table([case], ["c", "numpy"], [1], repeats=2, settle=0)
    text = benchmarks.format_table(rows, ["c", "numpy"])
    assert "c vs numpy" in text and case.name in text
    assert rows[0]["seconds"]["c"] > 0 and rows[0]["gflops"]["numpy"] > 0
