# cython: language_level=3
"""Thread count, OpenMP and instruction-set reporting of the C kernels."""
from fastseg._cy.kernels cimport (
    FS_OK, fs_get_num_threads, fs_isa_name, fs_openmp_enabled, fs_select_isa,
    fs_set_num_threads,
)


def set_num_threads(int n):
    fs_set_num_threads(n)


def get_num_threads():
    return fs_get_num_threads()


def openmp_enabled():
    return bool(fs_openmp_enabled())


def isa_name():
    return fs_isa_name().decode("ascii")


def select_isa(str name):
    """Force the GEMM micro-kernel: "avx2", "generic" or "auto"."""
    cdef bytes raw = name.encode("ascii")
    if fs_select_isa(raw) != FS_OK:
        raise ValueError(f"isa: cannot select {name!r} on this CPU/build "
                         "(expected 'auto', 'generic' or 'avx2')")
