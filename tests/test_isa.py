"""The choice of instruction set for the C kernels (kernels/src/isa_dispatch.c):
the default, forcing each one (FASTSEG_ISA or select_isa), refusing a name
that is unknown or that this CPU cannot run with a clear error -- never an
illegal instruction -- and the blocking reported for each.

The decision itself is also tested in C against the CPUID words of CPUs this
machine is not (kernels/tests/test_dispatch.c).
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fastseg import backends, info
from fastseg._cy import _runtime

ISAS = _runtime.ISAS
SUPPORTED = _runtime.supported_isas()
# What each table multiplies in registers (kernels/include/fastseg/blocking.h).
TILES = {"avx512": (10, 32), "avx2": (6, 16), "generic": (6, 16)}

# A child that computes something through every kind of kernel and prints
# the ISA it ran; its result is compared with NumPy's.
CHILD = """
import numpy as np, fastseg
from fastseg import backends, ops
r = np.random.default_rng(0).standard_normal
a, b = r((37, 300), np.float32), r((300, 41), np.float32)
x, w = r((2, 3, 20, 20), np.float32), r((5, 3, 5, 5), np.float32)
err = float(np.abs(ops.gemm(a, b) - a.astype(float) @ b).max())
y = ops.conv2d(x, w)
print(backends.runtime().isa_name(), err, float(np.abs(ops.relu(y)).sum()) > 0)
"""


def run_child(isa_env, code=CHILD):
    env = {k: v for k, v in os.environ.items() if k != "FASTSEG_ISA"}
    if isa_env is not None:
        env["FASTSEG_ISA"] = isa_env
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)


def assert_no_signal(proc):
    # A negative return code is a signal: SIGILL would mean an instruction the
    # CPU lacks was run.
    assert proc.returncode >= 0, f"killed by {signal.Signals(-proc.returncode).name}"


def test_generic_always_runs_and_the_default_is_the_best():
    assert "generic" in SUPPORTED
    assert SUPPORTED == [name for name in ISAS if name in SUPPORTED]  # best first
    proc = run_child(None)
    assert_no_signal(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == SUPPORTED[0]


@pytest.mark.parametrize("name", ISAS)
def test_fastseg_isa_forces_one_or_refuses_it(name):
    proc = run_child(name)
    assert_no_signal(proc)
    if name in SUPPORTED:
        assert proc.returncode == 0, proc.stderr
        chosen, err, _ = proc.stdout.split()
        assert chosen == name
        assert float(err) < 1e-3
    else:
        # This CPU lacks it: the kernels refuse to load, saying why.
        assert proc.returncode != 0
        assert f"FASTSEG_ISA={name} cannot run here" in proc.stderr


def test_fastseg_isa_unknown_name_is_a_clear_error():
    proc = run_child("avx1024")
    assert_no_signal(proc)
    assert proc.returncode != 0
    assert "FASTSEG_ISA=avx1024 is not an instruction set fastseg knows" in proc.stderr
    # The command line says it in one line.
    cli = run_child("avx1024", "import sys; from fastseg.cli import main; sys.exit(main(['info']))")
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1 and "avx1024" in cli.stderr


def test_fastseg_isa_auto_is_the_default():
    proc = run_child("auto")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == SUPPORTED[0]


@pytest.mark.parametrize("name", SUPPORTED)
def test_select_isa_in_process(name, rng):
    before = _runtime.isa_name()
    try:
        _runtime.select_isa(name)
        assert backends.runtime().isa_name() == name
        assert _runtime.blocking()["mr"] == TILES[name][0]
        a, b = rng.standard_normal((13, 70), np.float32), rng.standard_normal((70, 35), np.float32)
        from fastseg import ops

        np.testing.assert_allclose(ops.gemm(a, b), a.astype(float) @ b, rtol=1e-4, atol=1e-4)
    finally:
        _runtime.select_isa(before)


@pytest.mark.parametrize("bad", ["avx1024", "AVX2", "", "sse9"])
def test_select_isa_refuses_unknown_names_and_changes_nothing(bad):
    before = _runtime.isa_name()
    with pytest.raises(ValueError, match="unknown instruction set"):
        _runtime.select_isa(bad)
    assert _runtime.isa_name() == before
    with pytest.raises(TypeError):
        _runtime.select_isa(None)


@pytest.mark.parametrize("name", [n for n in ISAS if n != "generic"])
def test_select_isa_refuses_what_this_cpu_lacks(name):
    if name in SUPPORTED:
        pytest.skip(f"this CPU runs {name}: nothing to refuse")
    before = _runtime.isa_name()
    with pytest.raises(ValueError, match=f"'{name}' cannot run here: .*(lacks|does not save)"):
        _runtime.select_isa(name)
    assert _runtime.isa_name() == before


@pytest.mark.parametrize("name", SUPPORTED)
def test_blocking_fits_the_tile_and_the_caches(name):
    b = _runtime.blocking(name)
    assert (b["mr"], b["nr"]) == TILES[name]
    assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0
    assert 64 <= b["kc"] <= 256 and b["mc"] >= b["mr"] and b["nc"] >= b["nr"]
    caches = _runtime.cache_sizes()
    if caches["l1d"]:  # the B micro-panel within half of L1d
        assert b["kc"] * b["nr"] * 4 <= caches["l1d"] // 2 or b["kc"] == 64
    if caches["l2"]:  # the A block within half of L2
        assert b["mc"] * b["kc"] * 4 <= caches["l2"] // 2 or b["mc"] == b["mr"]


def test_info_reports_the_isa_and_the_blocking_in_use():
    data = info.collect()
    assert data["isa"] == backends.runtime().isa_name()
    assert data["isas"] == SUPPORTED
    assert data["blocking"] == _runtime.blocking()
    assert set(data["caches"]) == {"l1d", "l2", "l3"}
    text = info.format_info(data)
    b = data["blocking"]
    assert f"{data['isa']}  (this CPU runs" in text
    assert f"MR x NR {b['mr']} x {b['nr']}, MC {b['mc']}, KC {b['kc']}, NC {b['nc']}" in text
