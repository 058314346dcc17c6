"""fastseg.tuning: the tuner's choice on fake measures (deterministic), the tuning files
and the cache (corrupt, foreign, off, unwritable), and the kernels' settings restored
after tuning. The runtime setters and the first use: tests/test_tuning_runtime.py; the
command: tests/test_tuning_cli.py."""
import json
import sys
import types
import warnings

import pytest

from fastseg import backends
from fastseg.tuning import cache, files, tuner


@pytest.fixture
def tuning_on(tmp_path, monkeypatch):
    """Tuning on, in a cache folder of this test's own; the cache re-read."""
    monkeypatch.setenv("FASTSEG_TUNE", "1")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(tmp_path / "cache"))
    cache.reset()
    yield tmp_path / "cache"
    cache.reset()


def fixed(times: dict, calls: list | None = None):
    """A measure returning `times[candidate]` (a number or {case: seconds})."""
    def measure(candidate):
        if calls is not None:
            calls.append(candidate)
        value = times[candidate]
        if isinstance(value, Exception):
            raise value
        return value
    return measure


def tune_one(name, candidates, measure, **kw):
    t = tuner.Tunable(name, candidates, measure, **kw)
    report = tuner.tune(budget_s=0.01, tunables=[t])
    return report, report["tunables"][0]


# ---- the choice ---------------------------------------------------------------------------


def test_picks_the_fastest_candidate():
    calls = []
    report, rep = tune_one("x", [64, 128, 256], fixed({64: 1.0, 128: 0.8, 256: 0.5}, calls))
    assert report["choices"] == {"x": 256}
    assert rep["chosen"] == 2 and rep["why"] is None
    # A warm-up round and at least three timed rounds of every candidate, interleaved.
    assert calls.count(64) == calls.count(128) == calls.count(256) >= 1 + tuner.MIN_ROUNDS
    assert calls[:3] == [64, 128, 256] and calls[3:6] == [64, 128, 256]
    assert calls[6:9] == [128, 256, 64]  # the order rotates from round to round
    rows = {r["candidate"]: r for r in rep["rows"]}
    assert rows[256]["chosen"] and rows[64]["default"] and not rows[64]["chosen"]
    assert rows[128]["ratio"] == pytest.approx(0.8) and rows[256]["ms"] == pytest.approx(500)


def test_keeps_the_default_within_the_noise():
    report, rep = tune_one("x", ["a", "b"], fixed({"a": 1.0, "b": 0.98}))
    assert report["choices"] == {} and rep["chosen"] == 0
    assert rep["noise"] == pytest.approx(tuner.NOISE_FLOOR)


def test_a_case_slower_than_the_default_vetoes_a_faster_total():
    # b is faster in all (1.6 vs 2.0 s) but 10 % slower on case "q": never chosen.
    times = {"a": {"p": 1.0, "q": 1.0}, "b": {"p": 0.5, "q": 1.1},
             "c": {"p": 0.9, "q": 1.01}}
    report, rep = tune_one("x", ["a", "b", "c"], fixed(times))
    assert report["choices"] == {"x": "c"}
    rows = {r["candidate"]: r for r in rep["rows"]}
    assert rows["b"]["worst"] == pytest.approx(1.1)


def test_a_failing_candidate_is_never_chosen():
    times = {1: 1.0, 2: RuntimeError("no"), 3: 0.5, 4: -1.0, 5: float("nan")}
    report, rep = tune_one("x", [1, 2, 3, 4, 5], fixed(times))
    assert report["choices"] == {"x": 3}
    rows = {r["candidate"]: r for r in rep["rows"]}
    assert "RuntimeError: no" in rows[2]["failed"] and rows[2]["ms"] is None
    assert "ValueError" in rows[4]["failed"] and "ValueError" in rows[5]["failed"]


def test_a_default_that_cannot_be_measured_keeps_the_constants():
    report, rep = tune_one("x", [1, 2], fixed({1: OSError("broken"), 2: 0.1}))
    assert report["choices"] == {}
    assert "default cannot be measured" in rep["why"] and "broken" in rep["why"]


def test_timings_that_wander_keep_the_constants():
    default = iter([1.0, 2.0, 1.0, 3.0] * 4)  # the default's rounds: 50 % apart
    report, rep = tune_one("x", ["a", "b"], lambda c: next(default) if c == "a" else 0.5)
    assert report["choices"] == {}
    assert "wander" in rep["why"] and "too busy" in rep["why"]


def test_a_tunable_that_cannot_be_timed_now_says_why_and_measures_nothing():
    calls = []
    report, rep = tune_one("x", [1, 2], fixed({1: 1.0, 2: 0.1}, calls),
                           needs=lambda: "one CPU")
    assert report["choices"] == {} and rep["why"] == "one CPU" and calls == []
    assert "x: constant kept: one CPU" in tuner.format_table(report)


def test_keep_gets_the_winner_or_the_default_and_later_tunables_see_it():
    kept = []
    t1 = tuner.Tunable("a", [1, 2], fixed({1: 1.0, 2: 0.5}), keep=kept.append)
    t2 = tuner.Tunable("b", [1, 2], fixed({1: 1.0, 2: 1.0}), keep=kept.append)
    report = tuner.tune(budget_s=0.01, tunables=[t1, ("c", [7, 8], fixed({7: 1.0, 8: 2.0}))])
    assert kept == [2] and report["choices"] == {"a": 2}
    tuner.tune(budget_s=0.01, tunables=[t2])
    assert kept == [2, 1]


def test_tuples_are_stored_as_lists_and_the_table_reads_well():
    report, _ = tune_one("s", [("auto", 4), ("auto", 1)],
                         fixed({("auto", 4): 1.0, ("auto", 1): 0.5}))
    assert report["choices"] == {"s": ["auto", 1]}
    json.dumps(report["choices"])
    table = tuner.format_table(report)
    assert "auto/1" in table and "yes" in table and "(default)" in table


def test_tune_restores_the_kernels_settings():
    runtime = backends.runtime()
    before = (runtime.blocking(), runtime.gemm_split(), backends.get_num_threads(),
              runtime.deep_kc())

    def measure(value):
        runtime.set_blocking(kc=value)
        runtime.set_gemm_split("m", 1)
        runtime.set_deep_kc(value)
        backends.set_num_threads(1)
        return {128: 1.0, 256: 0.5}.get(value, 1.0)

    report = tuner.tune(budget_s=0.01, tunables=[tuner.Tunable("k", [128, 256], measure)])
    assert report["choices"] == {"k": 256}
    assert (runtime.blocking(), runtime.gemm_split(), backends.get_num_threads(),
            runtime.deep_kc()) == before


def test_the_gemm_tunables_run_on_the_kernels(monkeypatch):
    runtime = backends.runtime()
    before = runtime.blocking()
    monkeypatch.setattr(tuner, "_load", lambda: 99.0)  # busy: the split is not timed
    report = tuner.tune(budget_s=10, tunables=tuner.gemm_tunables(quick=True), quick=True)
    names = [r["name"] for r in report["tunables"]]
    assert names == ["gemm.kc", "gemm.mc", "gemm.nc", "conv.kc_deep", "gemm.split"]
    fitted = runtime.fitted_blocking()
    for rep in report["tunables"][:3]:
        assert rep["candidates"][0] == fitted[rep["name"][-2:]]
        assert all(r["ms"] > 0 for r in rep["rows"])
    deep = report["tunables"][3]
    assert deep["candidates"][0] == runtime.deep_kc()["fitted"]
    assert all(fitted["kc"] <= c <= 2048 and c % 16 == 0 for c in deep["candidates"])
    assert all(r["ms"] > 0 for r in deep["rows"])
    assert "load average 99.0" in report["tunables"][4]["why"]
    assert runtime.blocking() == before


def test_fft_tunables_join_when_their_module_exists(monkeypatch):
    fake = types.ModuleType("fastseg.tuning.fft")
    fake.tunables = lambda: [("fft.tile", [64, 128], fixed({64: 1.0, 128: 0.5}))]
    monkeypatch.setitem(sys.modules, "fastseg.tuning.fft", fake)
    # once imported, `from fastseg.tuning import fft` finds the package's attribute
    monkeypatch.setattr(sys.modules["fastseg.tuning"], "fft", fake, raising=False)
    listed, notes = tuner.all_tunables(quick=True)
    assert [t.name for t in listed][-1] == "fft.tile" and notes == []

    def broken():
        raise RuntimeError("not ready")

    fake.tunables = broken
    listed, notes = tuner.all_tunables(quick=True)
    assert "fft.tile" not in [t.name for t in listed]
    assert "not ready" in notes[0]


def test_machine_busy(monkeypatch):
    monkeypatch.setattr(tuner, "_cpus", lambda: 1)
    assert "1 CPU for 2 threads" in tuner.machine_busy(2)
    monkeypatch.setattr(tuner, "_cpus", lambda: 2)
    monkeypatch.setattr(tuner, "_load", lambda: 0.2)
    assert tuner.machine_busy(2) is None
    monkeypatch.setattr(tuner, "_load", lambda: 1.5)
    assert "load average 1.5 on 2 CPUs" in tuner.machine_busy(2)
    monkeypatch.setattr(tuner, "_load", lambda: None)  # no load average: time it
    assert tuner.machine_busy(2) is None


# ---- files and the cache ------------------------------------------------------------------


def test_store_then_get(tuning_on):
    path = cache.store({"gemm.kc": 256, "fft.tile": [64, 64]}, {"when": "now"})
    assert path.parent == tuning_on and path == cache.cache_path()
    cache.reset()
    assert cache.get("gemm.kc", 128) == 256
    assert cache.get("fft.tile", [1, 1]) == [64, 64]
    assert cache.get("missing", 7) == 7
    assert cache.get("gemm.kc", 1.5) == 1.5  # another type than the default's: ignored
    assert cache.meta()["when"] == "now"
    data = json.loads(path.read_text())
    assert data["format"] == files.FORMAT and data["key"] == cache.machine_key()


def test_off_reads_nothing(tuning_on, monkeypatch):
    cache.store({"gemm.kc": 256})
    monkeypatch.setenv("FASTSEG_TUNE", "0")
    cache.reset()
    assert cache.get("gemm.kc", 128) == 128 and cache.choices() == {} and cache.meta() == {}
    assert files.first_use_blocked() == "FASTSEG_TUNE=0"


@pytest.mark.parametrize("content, why", [
    ("{not json", "corrupt"),
    (json.dumps({"format": "other"}), "not a fastseg tuning file"),
    (json.dumps({"format": files.FORMAT, "version": 99}), "format version 99"),
    ("\udcff", "corrupt"),
])
def test_a_corrupt_file_is_ignored_with_a_warning(tuning_on, content, why):
    path = cache.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.warns(RuntimeWarning, match=why):
        assert cache.get("gemm.kc", 128) == 128


def test_a_foreign_file_is_ignored_with_a_warning(tuning_on):
    key = dict(cache.machine_key(), cpu="another CPU")
    # Written under this machine's name, as if copied from another machine.
    path = cache.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": files.FORMAT, "version": files.VERSION, "key": key,
                                "choices": {"gemm.kc": 256}}))
    with pytest.warns(RuntimeWarning, match="another CPU, instruction set or fastseg version"):
        assert cache.get("gemm.kc", 128) == 128


def test_an_oversized_file_is_not_read(tuning_on):
    path = cache.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b" " * (files.MAX_BYTES + 1))
    with pytest.warns(RuntimeWarning, match="more than a tuning file holds"):
        assert cache.choices() == {}


def test_an_unwritable_cache_folder_raises_oserror_and_reads_as_untuned(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FASTSEG_TUNE", "1")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(blocker / "cache"))  # under a file
    cache.reset()
    try:
        with pytest.raises(OSError):
            cache.store({"gemm.kc": 256})
        with pytest.raises(OSError):
            with files.lock(timeout=1):
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cache.get("gemm.kc", 128) == 128
    finally:
        cache.reset()


def test_the_lock_is_one_at_a_time(tuning_on):
    with files.lock():
        with pytest.raises(files.LockTimeout):
            # A second holder (another process would be the same: flock).
            import fcntl
            import os

            fd = os.open(tuning_on / "tune.lock", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise files.LockTimeout("held") from None
            finally:
                os.close(fd)
    with files.lock(timeout=0.5):
        pass


def test_first_use_is_blocked_off_the_main_thread_and_when_held(tuning_on):
    import threading

    assert files.first_use_blocked() is None
    with files.holding_first_use():
        assert files.first_use_blocked() == "held by the caller"
    assert files.first_use_blocked() is None
    seen = []
    thread = threading.Thread(target=lambda: seen.append(files.first_use_blocked()))
    thread.start()
    thread.join()
    assert seen == ["not the main thread"]


def test_the_first_use_budget(monkeypatch):
    monkeypatch.delenv("FASTSEG_TUNE_BUDGET", raising=False)
    assert files.first_use_budget() == 4.0
    for text, want in [("2.5", 2.5), ("0", 0.1), ("1e9", 600.0), ("x", 4.0), ("nan", 4.0)]:
        monkeypatch.setenv("FASTSEG_TUNE_BUDGET", text)
        assert files.first_use_budget() == want


def test_the_budget_skips_what_does_not_fit_and_says_why():
    import time

    calls = []
    report = tuner.tune(budget_s=0.0, tunables=[("a", [1, 2], fixed({1: 1.0, 2: 0.5}, calls))])
    assert report["choices"] == {} and calls == []
    assert "budget (0 s) was spent" in report["tunables"][0]["why"]

    def slow(value):
        time.sleep(0.3)
        return 1.0 if value == 1 else 0.5

    report = tuner.tune(budget_s=0.01, tunables=[("b", [1, 2], slow)])
    assert report["choices"] == {}
    assert "more than its share of the budget" in report["tunables"][0]["why"]
    assert "fastseg tune --budget" in tuner.format_table(report)
