"""What this installation of fastseg is and can do (``fastseg info``)."""
from __future__ import annotations

import platform

import numpy as np

import fastseg
from fastseg import backends


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect() -> dict:
    """Version, backends, the CPU and the kernels' instruction set, blocking,
    OpenMP and threads."""
    runtime = backends.runtime()
    return {
        "fastseg": fastseg.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "backends": backends.available(),
        "backend": backends.get_backend(),
        "isa": runtime.isa_name(),
        "isas": runtime.supported_isas(),
        "blocking": runtime.blocking(),
        "caches": runtime.cache_sizes(),
        "openmp": runtime.openmp_enabled(),
        "threads": runtime.get_num_threads(),
    }


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
            **info["blocking"])),
        ("caches per core", "L1d {}, L2 {}, L3 {}".format(
            *(_kib(info["caches"][c]) for c in ("l1d", "l2", "l3")))),
        ("OpenMP", "on" if info["openmp"] else "off (kernels run on one thread)"),
        ("threads", str(info["threads"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
