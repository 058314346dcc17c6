"""fastseg.tuning.fft: dense inference's FFT tunables, in the tuner's form."""
import pytest

import fastseg
from fastseg._inference import cost

pytestmark = pytest.mark.skipif("c" not in fastseg.available_backends(),
                                reason="the c backend is not built")


def test_tunables_list_the_cost_models_settings_defaults_first():
    from fastseg.tuning import fft

    listed = fft.tunables()
    names = [name for name, _, _ in listed]
    assert len(set(names)) == len(names) and set(names) == set(cost.TUNED) <= set(cost.SETTINGS)
    for name, candidates, measure in listed:
        assert candidates[0] == cost.SETTINGS[name], name
        assert len(candidates) >= 2 and callable(measure)
        # a tuned value must come back from the JSON file with the default's type
        assert all(type(c) is type(cost.SETTINGS[name]) for c in candidates), name


def test_each_measure_times_something_and_leaves_the_threads():
    """Each measure gives CPU seconds and leaves the thread count and the settings as they
    were (how long it takes is the tuner's budget's business, not asserted here)."""
    from fastseg.tuning import fft

    fastseg.set_num_threads(2)
    for name, candidates, measure in fft.tunables():
        measure(candidates[-1])  # first use: spectra, plans
        seconds = measure(candidates[-1])
        assert 0 < seconds < float("inf"), name
        assert fastseg.get_num_threads() == 2
        assert cost.setting(name) == cost.SETTINGS[name]  # no override left behind


def test_a_cached_fft_lengths_is_not_used(tmp_path, monkeypatch):
    """fft.lengths is not tuned: a value an earlier tuner left in the cache is ignored,
    while a tuned setting of TUNED is read."""
    from fastseg.tuning import cache

    monkeypatch.setenv("FASTSEG_TUNE", "1")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(tmp_path / "cache"))
    cache.reset()
    try:
        cache.store({"fft.lengths": [32, 64], "fft.margin": 1.0})
        assert cache.get("fft.lengths", []) == [32, 64]  # in the file...
        assert cost.setting("fft.lengths") == cost.SETTINGS["fft.lengths"]  # ...not used
        assert cost.setting("fft.margin") == 1.0
    finally:
        cache.reset()


def test_the_tuner_takes_them():
    tuner = pytest.importorskip("fastseg.tuning.tuner")
    listed, notes = tuner.all_tunables(quick=True)
    assert not notes
    assert {"fft.mults", "fft.margin"} <= {t.name for t in listed}
