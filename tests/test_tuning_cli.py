"""`fastseg tune`: the table and the file, --show, --reset, --json, and the bad cases that
still complete with the constants (a busy machine, a cache folder that cannot be
written) or are one-line errors (tuning off, bad options)."""
import json

import pytest

from fastseg import backends
from fastseg.cli import main
from fastseg.tuning import cache, files, tuner

runtime = backends.runtime()


@pytest.fixture
def tune_env(tmp_path, monkeypatch):
    """Tuning on in a folder of the test's own, the GEMM tunables alone on small shapes."""
    monkeypatch.setenv("FASTSEG_TUNE", "1")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuner, "all_tunables",
                        lambda quick=False: (tuner.gemm_tunables(quick=True), []))
    cache.reset()
    yield tmp_path / "cache"
    monkeypatch.setenv("FASTSEG_TUNE", "0")
    runtime.apply_tuned(warn=False)
    cache.reset()


def test_tune_prints_the_table_and_writes_the_file(tune_env, capsys):
    assert main(["tune", "--budget", "30"]) == 0
    out = capsys.readouterr().out
    for word in ("tunable", "candidate", "median ms", "vs default", "gemm.kc", "gemm.mc",
                 "gemm.nc", "gemm.split", "(default)", "load average", "saved to"):
        assert word in out, word
    (path,) = tune_env.glob("tuning-*.json")
    data = json.loads(path.read_text())
    assert data["key"] == files.key_for(runtime.isa_name())
    assert {r["tunable"] for r in data["meta"]["rows"]} >= {"gemm.kc", "gemm.mc", "gemm.nc"}
    # What was chosen is what runs now.
    fit = runtime.fitted_blocking()
    want = {b: data["choices"].get(f"gemm.{b}", fit[b]) for b in ("mc", "kc", "nc")}
    assert {b: runtime.blocking()[b] for b in want} == want

    assert main(["tune", "--show"]) == 0
    shown = capsys.readouterr().out
    assert "state: tuned" in shown and str(path) in shown and "gemm.kc" in shown
    assert main(["tune", "--show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "tuned"
    assert main(["info"]) == 0
    assert "tuned " in capsys.readouterr().out

    assert main(["tune", "--reset"]) == 0
    assert "removed 1 tuning file" in capsys.readouterr().out
    assert list(tune_env.glob("tuning-*.json")) == []
    assert runtime.blocking() == runtime.fitted_blocking()
    assert main(["tune", "--show"]) == 0
    assert "state: untuned" in capsys.readouterr().out


def test_tune_json(tune_env, capsys):
    assert main(["tune", "--budget", "30", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["saved"] and data["isa"] == runtime.isa_name()
    assert {r["tunable"] for r in data["rows"]} | set(data["kept_because"]) >= {
        "gemm.kc", "gemm.mc", "gemm.nc", "gemm.split"}


def test_a_busy_machine_completes_with_the_constants_and_says_why(tune_env, monkeypatch,
                                                                  capsys):
    monkeypatch.setattr(tuner, "_load", lambda: 50.0)
    monkeypatch.setattr(tuner, "MAX_SPREAD", -1.0)  # and every timing "wanders"
    assert main(["tune", "--budget", "30"]) == 0
    out = capsys.readouterr().out
    assert "gemm.split: constant kept: load average 50.0" in out
    assert "gemm.kc: constant kept: the default's timings wander" in out
    assert "every constant kept" in out
    assert runtime.blocking() == runtime.fitted_blocking()
    (path,) = tune_env.glob("tuning-*.json")
    assert json.loads(path.read_text())["choices"] == {}


def test_an_unwritable_cache_folder_completes_with_the_constants(tmp_path, tune_env,
                                                                 monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FASTSEG_CACHE_DIR", str(blocker / "cache"))
    assert main(["tune", "--budget", "30"]) == 0
    out = capsys.readouterr().out
    assert "not saved" in out and "the constants stay in use" in out
    assert runtime.blocking() == runtime.fitted_blocking()


def test_tune_errors_are_one_line(tune_env, monkeypatch, capsys):
    assert main(["tune", "--budget", "0"]) == 2
    assert "--budget: expected seconds in [0.5, 600]" in capsys.readouterr().err
    assert main(["tune", "--isa", "sse9"]) == 2
    assert "unknown instruction set 'sse9'" in capsys.readouterr().err
    monkeypatch.setenv("FASTSEG_TUNE", "0")
    assert main(["tune"]) == 2
    err = capsys.readouterr().err
    assert "tuning is off (FASTSEG_TUNE=0)" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:
        main(["tune", "--bogus"])
    assert usage.value.code == 2


def test_tune_another_isa(tune_env, capsys):
    isas = runtime.supported_isas()
    if len(isas) < 2:
        pytest.skip("one instruction set here")
    before = runtime.isa_name()
    try:
        assert main(["tune", "--budget", "30", "--isa", isas[1]]) == 0
    finally:
        runtime.select_isa(before)
    assert [p.name.split("-")[1] for p in tune_env.glob("tuning-*.json")] == [isas[1]]
