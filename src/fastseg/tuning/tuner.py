"""Time candidate kernel settings on this CPU and keep those that beat the constants.

A *tunable* is ``(name, candidates, measure)``: ``candidates[0]`` is the default (what
the kernels use untuned: the constants fitted to the caches), ``measure(candidate)``
runs the paper's shapes with that setting and returns the seconds they took, either one
number or ``{case: seconds}``. :func:`tune` times every candidate of every tunable in a
few seconds in all and returns the winners; ``fastseg tune`` (and, once, the first use
of the compiled kernels on a machine) stores them with :mod:`.cache`, and the kernels'
runtime applies them when it loads.

How a winner is chosen (the noise rule). The candidates of a tunable are measured in
rounds, each round every candidate once, in an order that rotates from round to round
(after one warm-up round, whose times only size the budget). Each candidate's time is
compared with the default's *of the same round*, and the median of those ratios over
the rounds is its figure. The noise is twice the default's own spread over the rounds
(median absolute deviation over median), and at least 3 %. A candidate wins only when
its median ratio is below ``1 - noise`` and, for a measure that returns cases, no case
is slower than the default's by more than the noise; the best winner is kept, else the
default. Where timing cannot mean anything the default is kept and the report says why:
the default's rounds wander by more than 15 %, its measure fails, or (for the two-thread
settings) fewer than two CPUs are free by the load average. A candidate whose measure
fails is never chosen.

The budget. Each tunable gets an even share of what is left of `budget_s`: as many rounds
as fit it (3 to 7), measured after the warm-up round. A tunable that would need more than
twice its share, or that comes after the budget is spent, is not timed (its default kept,
the reason given): the first use (4 s) times the kernels' blocks and whatever else fits,
``fastseg tune`` (60 s by default) everything.

The tunables (:func:`gemm_tunables`), each measured on shapes cut from lai2d's and
lai3d's layers: GEMM (conv 20->50 forward, dW, dX; fc1 forward, dW, dX), the fused 2-D
convolution and the 3-D convolution forward and backward, which use the same blocks.

- ``gemm.kc``, ``gemm.mc``, ``gemm.nc``: the cache blocks of the instruction set in use,
  one thread, CPU time of the timing thread (other processes on the core do not count),
  each measured with the winners before it. KC sets the order in which a K-long sum is
  added (a KC block at a time), so a tuned KC changes GEMM and convolution results at
  rounding level (never more: the sums are the same sums in other groupings); MC and NC
  change no result.
- ``conv.kc_deep``: the K block of a convolution forward whose weight is packed once for
  all threads (dense lai2d's 1000 x 12800 layer; fitted: as long as the fitted MC x KC
  block fits half of L2), one thread; it regroups that layer's sums, at rounding level.
- ``gemm.split``: how two threads cut C (fs_sgemm's blocks per thread: fewer blocks
  repack less, more let a thread slowed by another process hand its work over); wall
  clock, two threads; changes no result.
- and, where :mod:`fastseg.tuning.fft` exists, its ``tunables()`` (the FFT tile size,
  the direct-vs-FFT crossover of dense inference).

Run ``python -m fastseg.tuning.tuner --first-use`` is what the first use starts (the
kernels' runtime, ``fastseg._cy._runtime``): it takes the tuning lock, tunes unless
another process tuned meanwhile, and writes the file even when every constant was kept,
so the next process does not tune again.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Tunable", "gemm_tunables", "all_tunables", "tune", "run", "format_table",
           "NOISE_FLOOR", "MAX_SPREAD", "machine_busy"]

#: The smallest gain (and the largest per-case loss) that counts as more than noise.
NOISE_FLOOR = 0.03
#: A default whose rounds wander by more than this (MAD / median) cannot be timed.
MAX_SPREAD = 0.15
#: Rounds per tunable, after the warm-up round: at least, at most.
MIN_ROUNDS, MAX_ROUNDS = 3, 7


@dataclass
class Tunable:
    """One setting to tune: `candidates[0]` is the default; `measure(candidate)` returns
    seconds (or ``{case: seconds}``). `keep(value)` (optional) is called with the value
    chosen (the default when none won), so later tunables are measured with it; `needs`
    (optional) returns why the tunable cannot be timed now, or None."""

    name: str
    candidates: Sequence
    measure: Callable[[object], float | Mapping[str, float]]
    keep: Callable[[object], None] | None = None
    needs: Callable[[], str | None] | None = None
    what: str = ""
    rows: list = field(default_factory=list)


# ---- the machine --------------------------------------------------------------------------


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_busy(threads: int = 2) -> str | None:
    """Why `threads` threads cannot be timed here now, or None: fewer CPUs than
    threads, or a one-minute load average that leaves fewer than `threads` of them
    free (another job holds a core: the timings would measure the scheduler)."""
    cpus = _cpus()
    if cpus < threads:
        return f"{cpus} CPU{'s' if cpus != 1 else ''} for {threads} threads"
    load = _load()
    if load is not None and load > cpus - threads + 0.75:
        return (f"load average {load:.1f} on {cpus} CPUs: other jobs hold a core, so "
                f"{threads}-thread timings would measure the scheduler")
    return None


# ---- the GEMM tunables ------------------------------------------------------------------


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _cases(quick: bool):
    """{case: run} on shapes cut from lai2d's and lai3d's layers (`quick`: smaller)."""
    from fastseg import ops

    rng = np.random.default_rng(0)
    s = 4 if quick else 1  # quick: a quarter of the long dimension
    cases = {}
    # (M, K, N, trans_a, trans_b): lai2d conv2 fwd / dW / dX at batch 8, fc1 fwd / dW / dX
    # at batch 128 with the 1000 units (or K) cut to a quarter.
    for m, k, n, ta, tb, name in [
            (50, 500, 8192 // s, False, False, "conv2-fwd"),
            (50, 8192 // s, 500, False, True, "conv2-dW"),
            (500, 50, 8192 // s, True, False, "conv2-dX"),
            (128, 12800 // s, 250, False, True, "fc1-fwd"),
            (300, 128, 12800 // s, True, False, "fc1-dW"),
            (128, 1000, 3200 // s, False, False, "fc1-dX")]:
        a = _rand(rng, *((k, m) if ta else (m, k)))
        b = _rand(rng, *((n, k) if tb else (k, n)))
        cases[f"gemm {m}x{k}x{n} {name}"] = (lambda a=a, b=b, ta=ta, tb=tb:
                                             ops.gemm(a, b, ta, tb, backend="c"))
    batch = 2 if quick else 8
    x2, w2, dy2 = _rand(rng, batch, 20, 20, 20), _rand(rng, 50, 20, 5, 5), \
        _rand(rng, batch, 50, 16, 16)

    def conv2d():
        ops.conv2d(x2, w2, backend="c")
        ops.conv2d_backward(x2, w2, dy2, backend="c")

    cases[f"conv2d 20->50 b{batch} fwd+bwd"] = conv2d
    vb = 1 if quick else 2
    x3, w3, dy3 = _rand(rng, vb, 20, 10, 10, 10), _rand(rng, 50, 20, 5, 5, 5), \
        _rand(rng, vb, 50, 6, 6, 6)

    def conv3d():
        ops.conv3d(x3, w3, backend="c")
        ops.conv3d_backward(x3, w3, dy3, backend="c")

    cases[f"conv3d 20->50 b{vb} fwd+bwd"] = conv3d
    return cases


def _timed(cases, threads: int) -> dict:
    """Seconds of each case once, on `threads` threads: CPU time of this thread on one
    (what other processes take of the core does not count), wall clock on more."""
    from fastseg import backends

    before = backends.get_num_threads()
    backends.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    out = {}
    try:
        for name, run in cases.items():
            t0 = clock()
            run()
            out[name] = clock() - t0
    finally:
        backends.set_num_threads(before)
    return out


def _multiples(values, unit: int, lo: int, hi: int) -> list[int]:
    out = []
    for v in values:
        v = max(lo, min(hi, int(round(v / unit)) * unit))
        if v not in out:
            out.append(v)
    return out


def gemm_tunables(quick: bool = False) -> list[Tunable]:
    """The compiled kernels' tunables for the instruction set in use: KC, MC, NC (one
    thread, in that order, each measured with the winners before it), then the thread
    split (two threads). Measuring changes the kernels' settings; :func:`tune` puts them
    back."""
    from fastseg import backends

    runtime = backends.runtime()
    fitted = runtime.fitted_blocking()
    mr, nr = fitted["mr"], fitted["nr"]
    state = {b: fitted[b] for b in ("mc", "kc", "nc")}
    cases = _cases(quick)

    def blocks(which: str):
        def measure(value):
            runtime.set_blocking(**{**state, which: value})
            try:
                return _timed(cases, 1)
            finally:
                runtime.set_blocking(**state)

        def keep(value):
            state[which] = value
            runtime.set_blocking(**state)

        return measure, keep

    kc_alt = [v for v in (128, 192, 256, 384) if v != fitted["kc"]]
    kc = [fitted["kc"]] + (kc_alt[1:3] if quick else kc_alt)[:3]
    mc = _multiples([fitted["mc"], fitted["mc"] * 2 / 3, fitted["mc"] * 2], mr, mr, 4096)
    nc = _multiples([fitted["nc"], fitted["nc"] / 2, fitted["nc"] * 2], nr, nr, 32768)
    if quick:
        mc, nc = mc[:2], nc[:2]
    out = []
    for which, cands, what in [("kc", kc, "GEMM K block (KC), one thread"),
                               ("mc", mc, "GEMM M block (MC), one thread"),
                               ("nc", nc, "GEMM N block (NC), one thread")]:
        measure, keep = blocks(which)
        out.append(Tunable(f"gemm.{which}", cands, measure, keep=keep, what=what))

    out.append(_deep_kc_tunable(runtime, fitted["kc"], quick))
    split0 = runtime.gemm_split()

    def measure_split(value):
        runtime.set_gemm_split(*value)
        try:
            return _timed(cases, 2)
        finally:
            runtime.set_gemm_split(*split0)

    out.append(Tunable("gemm.split", [["auto", 4], ["auto", 1], ["auto", 2]], measure_split,
                       keep=lambda v: runtime.set_gemm_split(*v),
                       needs=lambda: machine_busy(2) if runtime.openmp_enabled() else
                       "the kernels were built without OpenMP",
                       what="GEMM blocks per thread, two threads"))
    return out


def _deep_setting(state: dict) -> int:
    """What set_deep_kc takes to restore `state` (runtime.deep_kc()'s): 0 for the fitted."""
    return 0 if state["kc"] == state["fitted"] else state["kc"]


def _deep_kc_tunable(runtime, kc: int, quick: bool) -> Tunable:
    """``conv.kc_deep``: the K block of a convolution whose weight is packed once for all
    threads (dense lai2d's 1000 x 50 x 16 x 16 layer, here with 250 filters, or 160
    `quick`, on 16 or 8 rows of 32 outputs), one thread; regroups that layer's sums
    (rounding level), no other result."""
    from fastseg import ops

    rng = np.random.default_rng(1)
    filters, rows = (160, 8) if quick else (250, 16)
    x = _rand(rng, 1, 50, rows + 15, 32 + 15)
    w = _rand(rng, filters, 50, 16, 16)
    cases = {f"conv2d 50->{filters} 16x16 on {rows}x32 (packed once)":
             lambda: ops.conv2d(x, w, backend="c")}
    fitted = runtime.deep_kc()["fitted"]
    cands = _multiples([fitted, fitted / 2, fitted * 3 / 2, fitted * 2], 16, max(16, kc), 2048)

    def measure(value):
        before = runtime.deep_kc()
        runtime.set_deep_kc(value)
        try:
            return _timed(cases, 1)
        finally:
            runtime.set_deep_kc(_deep_setting(before))

    return Tunable("conv.kc_deep", cands[:3] if quick else cands, measure,
                   keep=runtime.set_deep_kc,
                   what="deep K block of a weight packed once (dense FC layer), one thread")


def all_tunables(quick: bool = False) -> tuple[list[Tunable], list[str]]:
    """Every tunable (the kernels', then dense inference's where
    :mod:`fastseg.tuning.fft` exists) and notes on any that could not be listed."""
    out, notes = gemm_tunables(quick), []
    try:
        from fastseg.tuning import fft
    except ImportError:
        return out, notes
    try:
        for name, candidates, measure in fft.tunables():
            out.append(Tunable(name, list(candidates), measure, what="dense inference (FFT)"))
    except Exception as exc:  # noqa: BLE001 -- another module's bug must not stop tuning
        notes.append(f"fft tunables unavailable ({type(exc).__name__}: {exc})")
    return out, notes


# ---- timing and the choice ---------------------------------------------------------------


def _as_cases(result) -> dict[str, float]:
    cases = dict(result) if isinstance(result, Mapping) else {"total": result}
    for k, v in cases.items():
        v = float(v)
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"measure gave {v!r} seconds for {k}")
        cases[k] = v
    if not cases:
        raise ValueError("measure gave no times")
    return cases


def _spread(values) -> float:
    med = statistics.median(values)
    return statistics.median(abs(v - med) for v in values) / med if med > 0 else math.inf


def _decide(samples: list[list[dict]], failed: dict[int, str]):
    """(index of the winner, its figure per candidate, noise, why the default stays).

    `samples[i][r]` is candidate i's {case: seconds} of round r (every round, unless
    the candidate failed)."""
    default = samples[0]
    totals0 = [sum(s.values()) for s in default]
    spread = _spread(totals0)
    noise = max(NOISE_FLOOR, 2 * spread)
    figures = {}
    for i, rounds in enumerate(samples):
        if i in failed or len(rounds) != len(default):
            continue
        ratios = [sum(s.values()) / t0 for s, t0 in zip(rounds, totals0, strict=True)]
        worst = max(statistics.median(s[c] / d[c] for s, d in zip(rounds, default, strict=True))
                    for c in default[0])
        figures[i] = (statistics.median(ratios), worst)
    if spread > MAX_SPREAD:
        return 0, figures, noise, (f"the default's timings wander by {spread:.0%} "
                                   f"(more than {MAX_SPREAD:.0%}): the machine is too busy "
                                   "to tell")
    winners = [i for i, (ratio, worst) in figures.items()
               if i and ratio < 1 - noise and worst < 1 + noise]
    if not winners:
        return 0, figures, noise, None
    return min(winners, key=lambda i: figures[i][0]), figures, noise, None


def _time_tunable(t: Tunable, budget: float, progress) -> dict:
    """Measure `t`'s candidates in rounds within about `budget` seconds; its report."""
    cands = list(t.candidates)
    report = {"name": t.name, "what": t.what, "candidates": cands, "chosen": 0, "why": None,
              "rows": []}
    why = t.needs() if t.needs is not None else None
    if why is not None:
        report["why"] = why
        return report
    failed: dict[int, str] = {}
    samples: list[list[dict]] = [[] for _ in cands]
    t0 = time.perf_counter()
    rounds, r = None, -1  # round -1: the warm-up, which sizes the rounds
    while rounds is None or r < rounds:
        order = list(range(len(cands)))
        if r > 0:
            order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            if i in failed:
                continue
            try:
                result = _as_cases(t.measure(cands[i]))
            except Exception as exc:  # noqa: BLE001 -- a failing candidate is reported
                failed[i] = f"{type(exc).__name__}: {exc}"
                if i == 0:
                    report["why"] = f"the default cannot be measured ({failed[0]})"
                    report["failed"] = failed
                    return report
                continue
            if r >= 0:
                samples[i].append(result)
        if rounds is None:
            per_round = max(time.perf_counter() - t0, 1e-6)
            rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, budget // per_round)))
            if per_round * rounds > 2 * budget + 1.0:
                report["why"] = (f"timing it needs ~{per_round * rounds:.0f} s, more than its "
                                 f"share of the budget ({budget:.1f} s): fastseg tune "
                                 "--budget N with a larger N times it")
                return report
            if progress:
                progress(f"{t.name}: {len(cands)} candidates, {rounds} rounds "
                         f"(~{per_round * rounds:.1f} s)")
        r += 1
    best, figures, noise, why = _decide(samples, failed)
    report.update(chosen=best, why=why, noise=noise, failed=failed,
                  rounds=rounds, seconds=time.perf_counter() - t0)
    for i, cand in enumerate(cands):
        row = {"tunable": t.name, "candidate": cand, "default": i == 0, "chosen": i == best}
        if i in failed:
            row.update(ms=None, ratio=None, failed=failed[i])
        elif samples[i]:
            row.update(ms=1e3 * statistics.median(sum(s.values()) for s in samples[i]),
                       ratio=figures[i][0] if i in figures else None,
                       worst=figures[i][1] if i in figures else None)
        report["rows"].append(row)
    return report


def tune(budget_s: float = 4.0, progress: Callable[[str], None] | None = None,
         tunables: Sequence | None = None, quick: bool | None = None) -> dict:
    """Time every tunable's candidates in about `budget_s` seconds; the report.

    `tunables` (default: :func:`all_tunables`) are :class:`Tunable` objects or
    ``(name, candidates, measure)`` triples; `quick` (default: a budget under 1.5 s)
    measures smaller shapes and fewer candidates. The kernels' settings, threads and
    instruction set are as before when it returns; nothing is written (:func:`run`
    stores and applies).

    Returns
    -------
    dict
        ``choices`` (the winners only: name -> value), ``tunables`` (per tunable: its
        candidates, the rows of the table, the winner, the noise, why the default was
        kept when it was), ``notes``, ``isa``, ``load`` (one-minute load average before
        and after), ``cpus``, ``budget_s`` and ``seconds``.
    """
    from fastseg import backends

    quick = budget_s < 1.5 if quick is None else quick
    runtime = backends.runtime()
    notes: list[str] = []
    if tunables is None:
        tunables, notes = all_tunables(quick)
    tunables = [t if isinstance(t, Tunable) else Tunable(*t) for t in tunables]
    saved = (runtime.blocking(), runtime.gemm_split(), backends.get_num_threads(),
             runtime.deep_kc())
    started, load0 = time.perf_counter(), _load()
    reports = []
    try:
        for k, t in enumerate(tunables):
            left = budget_s - (time.perf_counter() - started)
            share = max(left, 0.0) / (len(tunables) - k)
            if left <= 0:
                rep = {"name": t.name, "what": t.what, "candidates": list(t.candidates),
                       "chosen": 0, "rows": [],
                       "why": f"the budget ({budget_s:g} s) was spent before it: fastseg tune "
                              "--budget N with a larger N times it"}
            else:
                if progress:
                    progress(f"timing {t.name} ({t.what or 'dense inference'})")
                rep = _time_tunable(t, share, progress)
            reports.append(rep)
            if t.keep is not None:
                t.keep(t.candidates[rep["chosen"]])
    finally:
        b, split, threads, deep = saved
        runtime.set_blocking(mc=b["mc"], kc=b["kc"], nc=b["nc"])
        runtime.set_deep_kc(_deep_setting(deep))
        runtime.set_gemm_split(*split)
        backends.set_num_threads(threads)
    choices = {r["name"]: _plain(r["candidates"][r["chosen"]])
               for r in reports if r["chosen"]}
    return {"choices": choices, "tunables": reports, "notes": notes,
            "isa": runtime.isa_name(), "cpus": _cpus(), "load": [load0, _load()],
            "budget_s": budget_s, "seconds": time.perf_counter() - started}


def _plain(value):
    """A candidate as JSON keeps it (tuples as lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _meta(report: dict) -> dict:
    rows = [{k: _plain(v) for k, v in row.items()}
            for rep in report["tunables"] for row in rep["rows"]]
    kept = {rep["name"]: rep["why"] for rep in report["tunables"] if rep.get("why")}
    return {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load": report["load"], "cpus": report["cpus"], "budget_s": report["budget_s"],
            "seconds": round(report["seconds"], 3), "rows": rows, "kept_because": kept,
            "notes": report["notes"]}


def run(budget_s: float = 4.0, progress: Callable[[str], None] | None = None,
        write: bool = True, quick: bool | None = None) -> dict:
    """:func:`tune`, then store the winners (the file says the constants were kept when
    none won) and apply them to the kernels. A cache folder that cannot be written is no
    error: the report's ``saved`` is None and ``save_error`` says why, and the kernels
    keep what they ran before (the constants, when nothing was tuned).
    """
    from fastseg import backends
    from fastseg.tuning import cache, files

    report = tune(budget_s, progress, quick=quick)
    report["saved"], report["save_error"] = None, None
    if write:
        try:
            with files.lock():
                report["saved"] = str(cache.store(report["choices"], _meta(report)))
        except OSError as exc:
            report["save_error"] = f"{type(exc).__name__}: {exc}"
        backends.runtime().apply_tuned(warn=False)
    return report


def format_table(report: dict) -> str:
    """The report as a table: tunable, candidate, median time, ratio to the default
    (< 1: faster), the one chosen; then why any default was kept."""
    head = ["tunable", "candidate", "median ms", "vs default", "chosen"]
    lines = [head]
    whys = []
    for rep in report["tunables"]:
        if not rep["rows"]:
            lines.append([rep["name"], _show(rep["candidates"][0]), "-", "-", "default"])
        for row in rep["rows"]:
            ms = "failed" if row.get("failed") else (
                "-" if row.get("ms") is None else f"{row['ms']:.2f}")
            ratio = "-" if row.get("ratio") is None else f"{row['ratio']:.3f}"
            mark = ("yes" if row["chosen"] else "") + (" (default)" if row["default"] else "")
            lines.append([row["tunable"], _show(row["candidate"]), ms, ratio, mark.strip()])
        if rep.get("why"):
            whys.append(f"{rep['name']}: constant kept: {rep['why']}")
        elif rep.get("noise") is not None:
            whys.append(f"{rep['name']}: {rep['rounds']} rounds, noise {rep['noise']:.1%} "
                        "(a candidate must beat the default by more, and lose no case by as "
                        "much)")
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in lines)
    extra = whys + report.get("notes", [])
    return text + ("\n" + "\n".join(extra) if extra else "")


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(str(v) for v in value) if value else "[]"
    return str(value)


# ---- python -m fastseg.tuning.tuner --first-use ----------------------------------------


def _first_use() -> int:
    """The first-use tuner's process: tune unless another process did meanwhile, and
    write the file even when every constant was kept."""
    from fastseg import backends
    from fastseg.tuning import files

    budget = files.first_use_budget()
    try:
        with files.lock():
            isa = backends.runtime().isa_name()
            if files.path_for(files.key_for(isa)).exists():
                return 0
            report = tune(budget)
            files.write(files.key_for(isa), report["choices"], _meta(report))
    except (OSError, TimeoutError) as exc:
        print(f"fastseg tuner: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--first-use"]:
        sys.exit(_first_use())
    print("usage: python -m fastseg.tuning.tuner --first-use   (or: fastseg tune)",
          file=sys.stderr)
    sys.exit(2)
