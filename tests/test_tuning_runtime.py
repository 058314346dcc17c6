"""The kernels' run-time settings that the tuner chooses (fs_set_blocking, fs_set_deep_kc,
fs_set_gemm_split through fastseg._cy._runtime), the tuned file applied when the kernels
load, and the first-use tuner (once, never with FASTSEG_TUNE=0, not at import, not off
the main thread, one at a time). The C side: kernels/tests/test_gemm.c, test_dispatch.c."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastseg import backends, ops
from fastseg.backends import numpy_backend as ref
from fastseg.tuning import cache, files

runtime = backends.runtime()


@pytest.fixture
def settings():
    """Whatever a test sets, every ISA's blocks and the split go back to the constants."""
    before = runtime.isa_name()
    yield runtime
    runtime.select_isa(before)
    for isa in runtime.supported_isas():
        runtime.set_blocking(isa=isa)
        runtime.set_deep_kc(isa=isa)
    runtime.set_gemm_split()


def oracle(a, b, ta, tb):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if ta else a64) @ (b64.T if tb else b64)


# 1, primes, odd sizes, and sizes past the blocks tried below.
SHAPES = [(1, 1, 1), (1, 97, 13), (13, 1, 97), (97, 13, 1), (7, 131, 257), (61, 389, 45),
          (151, 67, 531), (50, 999, 33)]
BLOCKS = [(0, 0, 0), ("mr", 16, "nr"), ("3mr", 37, "3nr"), ("40mr", 512, "64nr"),
          (0, 384, 0)]


def blocks_for(isa, spec):
    fit = runtime.fitted_blocking(isa)
    def one(v, unit):
        if isinstance(v, str):
            return int(v[:-2] or 1) * fit[unit]
        return v
    return one(spec[0], "mr"), spec[1], one(spec[2], "nr")


@pytest.mark.parametrize("spec", BLOCKS, ids=str)
def test_gemm_with_other_blocks_equals_the_reference(isa, settings, spec, threads, rng):
    mc, kc, nc = blocks_for(isa, spec)
    settings.set_blocking(mc, kc, nc)
    assert settings.blocking()["kc"] == (kc or settings.fitted_blocking()["kc"])
    for n_threads in (1, 2):
        backends.set_num_threads(n_threads)
        for m, k, n in SHAPES:
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
                    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
                    got = ops.gemm(a, b, ta, tb, backend="c")
                    np.testing.assert_allclose(got, oracle(a, b, ta, tb), rtol=1e-4,
                                               atol=2e-6 * (k + 4),
                                               err_msg=f"{m}x{k}x{n} {ta} {tb} {spec}")


def test_convolutions_with_other_blocks_equal_the_reference(isa, settings, threads, rng):
    x2 = rng.standard_normal((3, 7, 13, 11)).astype(np.float32)
    w2 = rng.standard_normal((11, 7, 3, 3)).astype(np.float32)
    x3 = rng.standard_normal((2, 5, 7, 6, 9)).astype(np.float32)
    w3 = rng.standard_normal((13, 5, 3, 2, 3)).astype(np.float32)
    want2 = ops.conv2d(x2, w2, padding=1, backend="numpy")
    want3 = ops.conv3d(x3, w3, padding=(1, 0, 1), backend="numpy")
    dy2, dy3 = (rng.standard_normal(w.shape).astype(np.float32) for w in (want2, want3))
    bwd2 = ops.conv2d_backward(x2, w2, dy2, padding=1, backend="numpy")
    bwd3 = ops.conv3d_backward(x3, w3, dy3, padding=(1, 0, 1), backend="numpy")
    for spec in BLOCKS[1:]:
        settings.set_blocking(*blocks_for(isa, spec))
        for n_threads in (1, 2):
            backends.set_num_threads(n_threads)
            np.testing.assert_allclose(ops.conv2d(x2, w2, padding=1, backend="c"), want2,
                                       rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(ops.conv3d(x3, w3, padding=(1, 0, 1), backend="c"),
                                       want3, rtol=1e-4, atol=1e-4)
            for got, want in zip(ops.conv2d_backward(x2, w2, dy2, padding=1, backend="c"),
                                 bwd2, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
            for got, want in zip(ops.conv3d_backward(x3, w3, dy3, padding=(1, 0, 1),
                                                     backend="c"), bwd3, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_mc_nc_and_the_split_change_no_bit(settings, threads, rng):
    """Only KC orders the sums: other M and N blocks, and any thread split, give the very
    same floats (what docs and bench/README promise)."""
    fit = settings.fitted_blocking()
    a = rng.standard_normal((157, 1100)).astype(np.float32)
    b = rng.standard_normal((1100, 700)).astype(np.float32)
    x = rng.standard_normal((4, 20, 20, 20)).astype(np.float32)
    w = rng.standard_normal((50, 20, 5, 5)).astype(np.float32)
    backends.set_num_threads(2)
    want = ops.gemm(a, b, backend="c"), ops.conv2d(x, w, backend="c")
    for mc, nc in [(fit["mr"], fit["nr"]), (3 * fit["mr"], 5 * fit["nr"]),
                   (30 * fit["mr"], 64 * fit["nr"])]:
        settings.set_blocking(mc=mc, nc=nc)
        for mode in ("auto", "n", "m"):
            for blocks in (0, 1, 3):
                settings.set_gemm_split(mode, blocks)
                for n_threads in (1, 2):
                    backends.set_num_threads(n_threads)
                    assert np.array_equal(ops.gemm(a, b, backend="c"), want[0])
                    assert np.array_equal(ops.conv2d(x, w, backend="c"), want[1])


@pytest.mark.parametrize("kw, match", [
    ({"mc": 11}, "not blocks"), ({"mc": -10}, "not blocks"), ({"kc": 15}, "not blocks"),
    ({"kc": 2049}, "not blocks"), ({"nc": 33}, "not blocks"), ({"mc": 5000}, "not blocks"),
    ({"kc": 2048, "nc": 32768}, "not blocks"), ({"isa": "sse9"}, "unknown instruction set"),
])
def test_set_blocking_refuses_bad_values_and_changes_nothing(settings, kw, match):
    before = settings.blocking()
    if "isa" not in kw and settings.isa_name() != "avx512":
        kw = {k: (v // 10 * 6 + 1 if k == "mc" and v > 0 and v % 10 == 1 else v)
              for k, v in kw.items()}
    with pytest.raises(ValueError, match=match):
        settings.set_blocking(**kw)
    assert settings.blocking() == before


@pytest.mark.parametrize("value", [1.5, "64", True, None])
def test_set_blocking_wants_ints(settings, value):
    with pytest.raises(TypeError, match="must be an int"):
        settings.set_blocking(kc=value)


@pytest.mark.parametrize("args", [("x", 0), ("auto", -1), ("auto", 17), ("n", 2.0)])
def test_set_gemm_split_refuses_bad_values(settings, args):
    with pytest.raises(ValueError):
        settings.set_gemm_split(*args)
    assert settings.gemm_split() == ("auto", 4)


def test_blocks_of_one_isa_leave_the_others_alone(settings):
    isas = settings.supported_isas()
    if len(isas) < 2:
        pytest.skip("one instruction set here")
    other = isas[1]
    settings.set_blocking(kc=200, isa=other)
    assert settings.blocking(other)["kc"] == 200
    assert settings.blocking() == settings.fitted_blocking()
    settings.select_isa(other)
    assert settings.blocking()["kc"] == 200


@pytest.mark.parametrize("value, error", [(15, ValueError), (2049, ValueError),
                                          (-1, ValueError), (1.5, TypeError), ("64", TypeError)])
def test_set_deep_kc_refuses_bad_values_and_changes_nothing(settings, value, error):
    before = settings.deep_kc()
    with pytest.raises(error):
        settings.set_deep_kc(value)
    assert settings.deep_kc() == before
    with pytest.raises(ValueError, match="unknown instruction set"):
        settings.set_deep_kc(64, isa="sse9")


@pytest.mark.parametrize("threads", [1, 2])
def test_the_deep_k_block_regroups_only_the_huge_convolution(settings, threads, rng):
    # a weight too big to pack per thread (700 x 1600 floats) takes the deep K block;
    # a small one does not notice it
    x = rng.standard_normal((1, 64, 6, 20), dtype=np.float32)
    big = rng.standard_normal((700, 64, 5, 5), dtype=np.float32)
    small = rng.standard_normal((50, 64, 5, 5), dtype=np.float32)
    fit = settings.deep_kc()
    assert fit["kc"] == fit["fitted"] >= settings.fitted_blocking()["kc"]
    old = backends.get_num_threads()
    backends.set_num_threads(threads)
    try:
        outs = {}
        for deep in (0, 64, 400, 2048):
            settings.set_deep_kc(deep)
            assert settings.deep_kc()["kc"] == (deep or fit["fitted"])
            outs[deep] = (ops.conv2d(x, big, backend="c"), ops.conv2d(x, small, backend="c"))
    finally:
        backends.set_num_threads(old)
    want = ref.conv2d(x.astype(np.float64), big.astype(np.float64), None, 1, 0)
    for y_big, y_small in outs.values():
        np.testing.assert_allclose(y_big, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        np.testing.assert_array_equal(y_small, outs[0][1])
    # 64 (run as the GEMM's KC, 128 or 256) against one block of all 1600: other sums,
    # other roundings
    assert not np.array_equal(outs[64][0], outs[2048][0])


# ---- the tuned file applied when the kernels load --------------------------------------------


@pytest.fixture
def tuning_dir(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("FASTSEG_TUNE", "1")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(tmp_path))
    cache.reset()
    yield tmp_path
    monkeypatch.setenv("FASTSEG_TUNE", "0")
    runtime.apply_tuned(warn=False)
    cache.reset()


def write(choices, isa=None, key=None):
    key = key or files.key_for(isa or runtime.isa_name())
    return files.write(key, choices, {"when": "2026-01-01T00:00:00Z"})


def test_apply_tuned_sets_the_files_blocks_and_split(tuning_dir):
    fit = runtime.fitted_blocking()
    deep = runtime.deep_kc()["fitted"]
    write({"gemm.kc": 192, "gemm.mc": 2 * fit["mr"], "gemm.split": ["auto", 1],
           "conv.kc_deep": 1024})
    state = runtime.apply_tuned()
    here = state[runtime.isa_name()]
    assert here["choices"] == {"gemm.kc": 192, "gemm.mc": 2 * fit["mr"],
                               "gemm.split": ["auto", 1], "conv.kc_deep": 1024}
    assert here["when"] == "2026-01-01T00:00:00Z" and here["why"] is None
    assert runtime.blocking() == dict(fit, kc=192, mc=2 * fit["mr"])
    assert runtime.gemm_split() == ("auto", 1)
    assert runtime.deep_kc() == {"fitted": deep, "kc": 1024}
    from fastseg import info

    text = info.format_info(info.collect())
    assert "tuned 2026-01-01T00:00:00Z" in text and f"gemm.kc 192 (constant {fit['kc']})" in text
    assert "fitted to the caches" in text
    assert f"deep KC 1024 (fitted {deep})" in text


@pytest.mark.parametrize("choices, why", [
    ({"gemm.kc": 5}, "refuse the file's blocks"),
    ({"gemm.kc": "big"}, "not an integer"),
    ({"gemm.split": ["diagonal", 1]}, "refuse the file's thread split"),
    ({"gemm.split": 3}, "refuse the file's thread split"),
    ({"conv.kc_deep": 4096}, "refuse the file's deep K block"),
    ({"conv.kc_deep": "long"}, "deep K block in the file is not an integer"),
])
def test_apply_tuned_refuses_bad_values_with_a_warning(tuning_dir, choices, why):
    write(choices)
    with pytest.warns(RuntimeWarning, match=why):
        state = runtime.apply_tuned()
    assert runtime.blocking() == runtime.fitted_blocking()
    assert runtime.gemm_split() == ("auto", 4)
    assert runtime.deep_kc()["kc"] == runtime.deep_kc()["fitted"]
    assert why in state[runtime.isa_name()]["why"]


def test_apply_tuned_ignores_a_corrupt_file_and_off_means_constants(tuning_dir, monkeypatch):
    path = files.path_for(files.key_for(runtime.isa_name()))
    path.write_text("{")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        runtime.apply_tuned()
    assert runtime.blocking() == runtime.fitted_blocking()
    write({"gemm.kc": 192})
    monkeypatch.setenv("FASTSEG_TUNE", "0")
    state = runtime.apply_tuned()
    assert runtime.blocking() == runtime.fitted_blocking()
    assert state[runtime.isa_name()]["why"] == "FASTSEG_TUNE=0"
    from fastseg import info

    assert "off (FASTSEG_TUNE=0): the constants" in info.format_info(info.collect())


def test_info_says_untuned_and_constants_kept(tuning_dir):
    from fastseg import info

    runtime.apply_tuned()
    assert "not tuned yet: the constants" in info.format_info(info.collect())
    files.write(files.key_for(runtime.isa_name()), {},
                {"when": "w", "kept_because": {"gemm.split": "load average 9.0"}})
    runtime.apply_tuned()
    text = info.format_info(info.collect())
    assert "tuned w: every constant kept (gemm.split: load average 9.0)" in text


# ---- the first use -----------------------------------------------------------------------

CHILD = """
import sys, fastseg, numpy as np
from fastseg import ops
{before}
a = np.ones((30, 40), np.float32)
print(float(ops.gemm(a, a.T).sum()))
"""


def child(tmp_path, before="", tune="1", extra_env=None, wait=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTSEG_")}
    env.update(FASTSEG_CACHE_DIR=str(tmp_path), FASTSEG_TUNE_BUDGET="0.2", **(extra_env or {}))
    if tune is not None:
        env["FASTSEG_TUNE"] = tune
    args = [sys.executable, "-c", CHILD.format(before=before)]
    if not wait:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def tuning_files(folder):
    return sorted(folder.glob("tuning-*.json"))


def test_first_use_tunes_once_and_then_reads(tmp_path):
    first = child(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("first use on this CPU") == 1
    (path,) = tuning_files(tmp_path)
    data = json.loads(path.read_text())
    assert data["meta"]["rows"] and "when" in data["meta"]
    second = child(tmp_path)
    assert second.returncode == 0 and "first use" not in second.stderr
    assert tuning_files(tmp_path) == [path] and path.read_text() == json.dumps(
        data, indent=2, sort_keys=True) + "\n"


def test_first_use_never_with_tuning_off_nor_at_import(tmp_path):
    off = child(tmp_path, tune="0")
    assert off.returncode == 0 and "first use" not in off.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTSEG_")}
    env.update(FASTSEG_CACHE_DIR=str(tmp_path), FASTSEG_TUNE="1")
    imported = subprocess.run([sys.executable, "-c", "import fastseg, fastseg.nn, fastseg.ops"],
                              env=env, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0 and "first use" not in imported.stderr
    assert tuning_files(tmp_path) == []


def test_first_use_not_off_the_main_thread(tmp_path):
    code = ("import threading\n"
            "t = threading.Thread(target=lambda: ops.gemm(np.ones((3, 3), np.float32), "
            "np.ones((3, 3), np.float32)))\nt.start(); t.join()")
    proc = child(tmp_path, before=code)
    assert proc.returncode == 0, proc.stderr
    assert "first use" not in proc.stderr and tuning_files(tmp_path) == []


def test_first_use_with_an_unwritable_folder_warns_and_uses_the_constants(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = child(blocker / "cache")
    assert proc.returncode == 0, proc.stderr
    assert "cannot tune the kernels" in proc.stderr and "constants stay in use" in proc.stderr


def test_first_use_is_one_tuner_at_a_time(tmp_path):
    procs = [child(tmp_path, wait=False) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(tuning_files(tmp_path)) == 1
