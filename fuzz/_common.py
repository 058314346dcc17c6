"""What every fuzz target shares: the rule an input breaks, the memory fence, the scratch file.

The rule (docs/reliability.md): a reader given any bytes either returns or raises one of
fastseg's own errors (:class:`fastseg.errors.FastsegError`), a ``ValueError`` or a
``TypeError``. Anything else escaping it -- ``MemoryError``, ``OverflowError``,
``RecursionError``, ``KeyError``, ``struct.error``, an ``OSError`` other than the file
being absent, a crash of the interpreter -- is a finding, and so is an input that runs
for longer than libFuzzer's ``-timeout``.

Every target runs with its address space capped (:func:`fence_memory`), so that an
allocation sized by a header's claim fails at once with ``MemoryError`` (a finding)
instead of being lazily granted by the kernel and passing unnoticed.
"""
from __future__ import annotations

import contextlib
import os
import resource
import sys
import tempfile

#: Address space a target may use; the readers' legitimate work on the small inputs of a
#: fuzz run needs a few hundred MB at most, so an allocation that breaks this is sized by
#: a claim in the input, not by its bytes.
ADDRESS_SPACE_MB = int(os.environ.get("FUZZ_ADDRESS_SPACE_MB", "4096"))

#: The pixel limit the image targets run under, 512 x 512: the library's default (2**26)
#: lets a 100-byte input declare an image whose honest decoding takes a second, which
#: would slow the run a hundredfold (the limit itself has its own regression tests).
os.environ.setdefault("FASTSEG_MAX_IMAGE_PIXELS", str(1 << 18))
# Kernels on one thread: fuzz inputs are small, and the runner may run targets side by side.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def fence_memory() -> None:
    """Cap the address space (RLIMIT_AS) of this process at :data:`ADDRESS_SPACE_MB`."""
    limit = ADDRESS_SPACE_MB << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def scratch_dir() -> str:
    """A private folder for this process's scratch files, in memory where Linux has one."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="fastseg-fuzz-", dir=base)


class Scratch:
    """One file name, rewritten with every input (a reader takes a path, not bytes)."""

    def __init__(self, name: str):
        self.folder = scratch_dir()
        self.path = os.path.join(self.folder, name)

    def write(self, data: bytes) -> str:
        with open(self.path, "wb") as f:
            f.write(data)
        return self.path


def allowed():
    """The exceptions a reader may raise on a bad file (see the module docstring)."""
    from fastseg.errors import FastsegError

    return (FastsegError, ValueError, TypeError)


def check(call, *args, **kwargs):
    """Run ``call(*args, **kwargs)``; an allowed exception is a good answer and is swallowed,
    anything else propagates to atheris, which reports the input as a crash."""
    try:
        return call(*args, **kwargs)
    except allowed():
        return None


@contextlib.contextmanager
def instrumented(*packages):
    """Coverage for fastseg and for `packages` (the third-party code a reader runs).

    `packages` are instrumented by atheris's import hook, so they (and modules they import
    lazily: nibabel, Pillow's format plugins, tifffile) must be imported inside the block.
    fastseg itself is not: an editable install imports it through scikit-build-core's own
    loader, which atheris's hook skips (or, with its experimental loader override, wraps
    without adding coverage: the first runs found none). So on leaving the block every
    fastseg module is imported and each of its Python functions instrumented in place, as
    ``atheris.instrument_all`` would, but only for fastseg (all loaded code took a minute).
    The C kernels and Cython wrappers carry no coverage: see docs/reliability.md.
    """
    import atheris

    if packages:
        with atheris.instrument_imports(include=list(packages), enable_loader_override=False):
            yield
    else:
        yield
    _import_every_module("fastseg")
    _instrument_loaded("fastseg")


#: Parts of fastseg no fuzz target reaches (the GPU backend, the cluster, the benchmarks and
#: experiments), left out of the instrumentation: importing them took seconds per target.
_NOT_READERS = ("fastseg.backends._cuda", "fastseg.backends.cuda", "fastseg.distributed",
                "fastseg.benchmarks", "fastseg.experiments")


def _import_every_module(package: str) -> None:
    """Import `package` and all its submodules (those whose optional needs are missing
    are left out), so that functions imported lazily are instrumented too."""
    import importlib
    import pkgutil

    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + ".",
                                      onerror=lambda name: None):
        if info.name.endswith(".__main__") or info.name.startswith(_NOT_READERS):
            continue  # __main__ runs the command line when imported
        with contextlib.suppress(ImportError):
            importlib.import_module(info.name)


def _instrument_loaded(prefix: str) -> None:
    import gc
    import types

    from atheris import instrument_bytecode

    patched = {}
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and \
                (getattr(obj, "__module__", None) or "").split(".")[0] == prefix:
            code = obj.__code__
            if code not in patched:
                patched[code] = instrument_bytecode.patch_code(code, True, True)
            obj.__code__ = patched[code]


def run(test_one_input, argv=None) -> None:
    """Hand the target to atheris (libFuzzer's command line: corpus folders and -flags)."""
    import atheris

    fence_memory()
    atheris.Setup(sys.argv if argv is None else argv, test_one_input)
    atheris.Fuzz()
