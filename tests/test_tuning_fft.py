"""fastseg.tuning.fft: dense inference's FFT tunables, in the tuner's form."""
import time

import pytest

import fastseg
from fastseg._inference import cost

pytestmark = pytest.mark.skipif("c" not in fastseg.available_backends(),
                                reason="the c backend is not built")


def test_tunables_list_the_cost_models_settings_defaults_first():
    from fastseg.tuning import fft

    listed = fft.tunables()
    names = [name for name, _, _ in listed]
    assert len(set(names)) == len(names) and set(names) <= set(cost.SETTINGS)
    for name, candidates, measure in listed:
        assert candidates[0] == cost.SETTINGS[name], name
        assert len(candidates) >= 2 and callable(measure)
        # a tuned value must come back from the JSON file with the default's type
        assert all(type(c) is type(cost.SETTINGS[name]) for c in candidates), name


def test_each_measure_is_quick_and_leaves_the_threads():
    from fastseg.tuning import fft

    fastseg.set_num_threads(2)
    for name, candidates, measure in fft.tunables():
        measure(candidates[-1])  # first use: spectra, plans
        t0 = time.perf_counter()
        seconds = measure(candidates[-1])
        assert 0 < seconds < 1.0 and time.perf_counter() - t0 < 2.0, name
        assert fastseg.get_num_threads() == 2
        assert cost.setting(name) == cost.SETTINGS[name]  # no override left behind


def test_the_tuner_takes_them():
    tuner = pytest.importorskip("fastseg.tuning.tuner")
    listed, notes = tuner.all_tunables(quick=True)
    assert not notes
    assert {"fft.mults", "fft.margin"} <= {t.name for t in listed}
