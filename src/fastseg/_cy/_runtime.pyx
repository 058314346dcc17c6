# cython: language_level=3
"""Thread count, OpenMP, the instruction set and the GEMM blocking of the C kernels."""
from libc.stdint cimport int64_t

from fastseg.errors import InvalidTypeError, InvalidValueError

from fastseg._cy.kernels cimport (
    FS_OK, fs_blocking, fs_cache_info, fs_get_num_threads, fs_isa_blocking,
    fs_isa_env_error, fs_isa_name, fs_isa_supported, fs_isa_why_not, fs_openmp_enabled,
    fs_select_isa, fs_set_num_threads,
)

# Every instruction set the kernels have a table for, best first.
ISAS = ("avx512", "avx2", "generic")


def set_num_threads(int n):
    fs_set_num_threads(n)


def get_num_threads():
    return fs_get_num_threads()


def openmp_enabled():
    return bool(fs_openmp_enabled())


def isa_name():
    return fs_isa_name().decode("ascii")


def supported_isas():
    """The instruction sets this CPU, its OS and this build can run, best first."""
    return [name for name in ISAS if fs_isa_supported(name.encode("ascii")) == 1]


def _check(name):
    """The name as bytes, or InvalidValueError saying why it cannot be used here."""
    if not isinstance(name, str):
        raise InvalidTypeError(f"isa: expected a str, got {type(name).__name__}")
    cdef bytes raw = name.encode("ascii", "replace")
    cdef int ok = fs_isa_supported(raw)
    if ok < 0:
        raise InvalidValueError(f"isa: unknown instruction set {name!r}; expected 'auto', "
                                + ", ".join(repr(n) for n in ISAS))
    if ok == 0:
        why = fs_isa_why_not(raw).decode("ascii")
        raise InvalidValueError(f"isa: {name!r} cannot run here: {why} "
                                f"(this machine runs {', '.join(supported_isas())})")
    return raw


def select_isa(name):
    """Force the kernels of one instruction set: "avx512", "avx2", "generic" or "auto"."""
    cdef bytes raw = _check(name)
    if fs_select_isa(raw) != FS_OK:  # the checks above make this unreachable
        raise InvalidValueError(f"isa: cannot select {name!r}")


def blocking(name=None):
    """The GEMM blocking of an instruction set (default: the one in use)."""
    cdef fs_blocking b
    cdef bytes raw = b"auto" if name is None else _check(name)
    if fs_isa_blocking(raw, &b) != FS_OK:
        raise InvalidValueError(f"isa: no blocking for {name!r}")
    return {"mr": b.mr, "nr": b.nr, "mc": b.mc, "kc": b.kc, "nc": b.nc}


def cache_sizes():
    """Cache bytes per core the blocking was fitted to (0: unknown)."""
    cdef int64_t l1d, l2, l3
    fs_cache_info(&l1d, &l2, &l3)
    return {"l1d": l1d, "l2": l2, "l3": l3}


def env_error():
    """None, or why FASTSEG_ISA could not be honoured."""
    cdef const char *err = fs_isa_env_error()
    return None if err == NULL else err.decode("ascii", "replace")
