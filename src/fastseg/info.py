"""What this installation of fastseg is and can do (``fastseg info``)."""
from __future__ import annotations

import platform

import numpy as np

import fastseg
from fastseg import backends
from fastseg.tuning import files


def collect() -> dict:
    """Version, backends, the CPU and the kernels' instruction set, blocking (as
    tuned, and as fitted to the caches), what tuning chose and when, OpenMP and
    threads. Asking starts no first-use tuner."""

    with files.holding_first_use():
        runtime = backends.runtime()
    return {
        "fastseg": fastseg.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": files.cpu_model(),
        "backends": backends.available(),
        "backend": backends.get_backend(),
        "isa": runtime.isa_name(),
        "isas": runtime.supported_isas(),
        "blocking": runtime.blocking(),
        "fitted_blocking": runtime.fitted_blocking(),
        "deep_kc": runtime.deep_kc(),
        "gemm_split": list(runtime.gemm_split()),
        "tuning": _tuning(runtime),
        "caches": runtime.cache_sizes(),
        "openmp": runtime.openmp_enabled(),
        "threads": runtime.get_num_threads(),
    }


def _tuning(runtime) -> dict:
    """What the tuner chose for the ISA in use and when, from its file: ``state`` is
    "off" (FASTSEG_TUNE=0), "untuned" (no file: the constants), "ignored" (a file not
    to be trusted: the constants) or "tuned" (``choices`` may be empty: every constant
    kept, ``kept_because`` says why where the machine could not tell)."""

    key = files.key_for(runtime.isa_name())
    path = files.path_for(key)
    out = {"file": str(path), "enabled": files.enabled(), "choices": {}, "when": None,
           "kept_because": {}, "why": None}
    if not files.enabled():
        return {**out, "state": "off", "why": "FASTSEG_TUNE=0"}
    choices, meta, why = files.read(path, key)
    if choices is None:
        return {**out, "state": "ignored" if why else "untuned", "why": why}
    applied = runtime.tuned_state().get(runtime.isa_name(), {})
    kept = meta.get("kept_because")
    return {**out, "state": "tuned", "choices": choices, "when": meta.get("when"),
            "kept_because": kept if isinstance(kept, dict) else {},
            "why": applied.get("why") if choices else None}


def _format_tuning(t: dict, fitted: dict) -> str:
    if t["state"] == "off":
        return "off (FASTSEG_TUNE=0): the constants"
    if t["state"] == "untuned":
        return "not tuned yet: the constants (fastseg tune, or the first use, times them)"
    if t["state"] == "ignored":
        return f"file ignored ({t['why']}): the constants"
    if not t["choices"]:
        why = "; ".join(f"{k}: {v}" for k, v in t["kept_because"].items())
        return f"tuned {t['when']}: every constant kept" + (f" ({why})" if why else "")
    parts = []
    for name, value in sorted(t["choices"].items()):
        shown = "/".join(map(str, value)) if isinstance(value, list) else str(value)
        block = name.removeprefix("gemm.")
        const = f" (constant {fitted[block]})" if block in ("mc", "kc", "nc") else ""
        parts.append(f"{name} {shown}{const}")
    note = f"; not applied: {t['why']}" if t.get("why") else ""
    if t["kept_because"]:
        note += "; not timed (constants): " + ", ".join(sorted(t["kept_because"]))
    return f"tuned {t['when']}: " + ", ".join(parts) + note


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n else "unknown"


def format_info(info: dict) -> str:
    rows = [
        ("fastseg", info["fastseg"]),
        ("python / numpy", f"{info['python']} / {info['numpy']} ({info['machine']})"),
        ("backends", ", ".join(info["backends"]) + f"  (current: {info['backend']})"),
        ("CPU", info["cpu"]),
        ("instruction set", f"{info['isa']}  (this CPU runs: {', '.join(info['isas'])})"),
        ("GEMM blocking", "MR x NR {mr} x {nr}, MC {mc}, KC {kc}, NC {nc}".format(
            **info["blocking"]) + ("" if info["blocking"] == info["fitted_blocking"] else
                                   "  (fitted to the caches: MC {mc}, KC {kc}, NC {nc})"
                                   .format(**info["fitted_blocking"]))
            + ", deep KC {kc}".format(**info["deep_kc"])
            + ("" if info["deep_kc"]["kc"] == info["deep_kc"]["fitted"] else
               " (fitted {fitted})".format(**info["deep_kc"]))),
        ("tuning", _format_tuning(info["tuning"], info["fitted_blocking"])),
        ("caches per core", "L1d {}, L2 {}, L3 {}".format(
            *(_kib(info["caches"][c]) for c in ("l1d", "l2", "l3")))),
        ("OpenMP", "on" if info["openmp"] else "off (kernels run on one thread)"),
        ("threads", str(info["threads"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
