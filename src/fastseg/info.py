"""What this installation of fastseg is and can do (``fastseg info``)."""
from __future__ import annotations

import platform

import numpy as np

import fastseg
from fastseg import _config


def collect() -> dict:
    """Version, backends, the GEMM instruction set, OpenMP and threads."""
    return {
        "fastseg": fastseg.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "backends": _config.available_backends(),
        "backend": _config.get_backend(),
        "isa": _config.isa(),
        "openmp": _config.openmp_enabled(),
        "threads": _config.get_num_threads(),
    }


def format_info(info: dict) -> str:
    rows = [
        ("fastseg", info["fastseg"]),
        ("python / numpy", f"{info['python']} / {info['numpy']} ({info['machine']})"),
        ("backends", ", ".join(info["backends"]) + f"  (current: {info['backend']})"),
        ("GEMM micro-kernel", info["isa"]),
        ("OpenMP", "on" if info["openmp"] else "off (kernels run on one thread)"),
        ("threads", str(info["threads"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
