# cython: language_level=3
"""Thread count, OpenMP, the instruction set and the GEMM blocking of the C kernels."""
from libc.stdint cimport int64_t

from fastseg.errors import InvalidTypeError, InvalidValueError

from fastseg._cy.kernels cimport (
    FS_ENOMEM, FS_OK, FS_SPLIT_AUTO, FS_SPLIT_BLOCKS_MAX, FS_SPLIT_M, FS_SPLIT_N, fs_blocking,
    fs_cache_info, fs_get_gemm_split, fs_get_num_threads, fs_idx, fs_isa_blocking,
    fs_isa_blocking_fitted, fs_isa_deep_kc, fs_isa_env_error, fs_isa_name, fs_isa_supported,
    fs_isa_why_not, fs_openmp_enabled, fs_select_isa, fs_set_blocking, fs_set_deep_kc,
    fs_set_gemm_split, fs_set_num_threads,
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
    """The GEMM blocking of an instruction set (default: the one in use), as it runs:
    the blocks fitted to the caches, or those set since (:func:`set_blocking`)."""
    cdef fs_blocking b
    cdef bytes raw = b"auto" if name is None else _check(name)
    if fs_isa_blocking(raw, &b) != FS_OK:
        raise InvalidValueError(f"isa: no blocking for {name!r}")
    return {"mr": b.mr, "nr": b.nr, "mc": b.mc, "kc": b.kc, "nc": b.nc}


def fitted_blocking(name=None):
    """The GEMM blocking of an instruction set as fitted to this CPU's caches (the
    constants), whatever was set since."""
    cdef fs_blocking b
    cdef bytes raw = b"auto" if name is None else _check(name)
    if fs_isa_blocking_fitted(raw, &b) != FS_OK:
        raise InvalidValueError(f"isa: no blocking for {name!r}")
    return {"mr": b.mr, "nr": b.nr, "mc": b.mc, "kc": b.kc, "nc": b.nc}


def _block(what, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"set_blocking: {what} must be an int, got {type(value).__name__}")
    return value


def set_blocking(mc=0, kc=0, nc=0, isa=None):
    """Use other GEMM cache blocks for an instruction set (default: the one in use)
    from now on; 0 keeps the block fitted to the caches, so ``set_blocking()`` goes back
    to the constants. Calls already running keep the blocks they started with.

    Raises
    ------
    ValueError
        A block outside the kernels' limits (MC a multiple of MR, NC of NR, KC in
        16..2048, the packed blocks within 16 and 32 MiB), or an instruction set that
        cannot run here; nothing changes then.
    """
    cdef bytes raw = b"auto" if isa is None else _check(isa)
    cdef fs_idx m = _block("mc", mc), k = _block("kc", kc), n = _block("nc", nc)
    cdef int st = fs_set_blocking(raw, m, k, n)
    if st == FS_ENOMEM:
        raise MemoryError("set_blocking: no memory for another kernel table")
    if st != FS_OK:
        b = fitted_blocking(isa)
        raise InvalidValueError(
            f"set_blocking: mc={mc}, kc={kc}, nc={nc} are not blocks the "
            f"{isa or isa_name()} kernels can run: mc a multiple of {b['mr']} in "
            f"[{b['mr']}, 4096], kc in [16, 2048], nc a multiple of {b['nr']} in "
            f"[{b['nr']}, 32768], mc*kc <= 4194304 and kc*nc <= 8388608 (0: the fitted value)")


def deep_kc(name=None):
    """The deep K block of an instruction set (default: the one in use): the K block of a
    convolution whose weight is packed once for all threads (dense lai2d's 1000 x 12800
    layer), ``{"fitted": ..., "kc": ...}`` -- fitted to the caches, and as it runs."""
    cdef fs_idx fitted, in_use
    cdef bytes raw = b"auto" if name is None else _check(name)
    if fs_isa_deep_kc(raw, &fitted, &in_use) != FS_OK:
        raise InvalidValueError(f"isa: no blocking for {name!r}")
    return {"fitted": fitted, "kc": in_use}


def set_deep_kc(kc=0, isa=None):
    """Use another deep K block for an instruction set (default: the one in use) from now
    on; 0 goes back to the fitted one (a block below the GEMM's KC runs as KC). It
    regroups those convolutions' sums, so their results change at rounding level.

    Raises
    ------
    ValueError
        A block outside 16..2048, or an instruction set that cannot run here.
    """
    cdef bytes raw = b"auto" if isa is None else _check(isa)
    cdef fs_idx k = _block("kc", kc)
    if fs_set_deep_kc(raw, k) != FS_OK:
        raise InvalidValueError(f"set_deep_kc: kc={kc} is not a deep K block the kernels can "
                                "run: 16..2048 (0: the fitted value)")


# How fs_sgemm cuts C among threads (kernels.h): names for FS_SPLIT_*.
SPLIT_MODES = {"auto": FS_SPLIT_AUTO, "n": FS_SPLIT_N, "m": FS_SPLIT_M}


def set_gemm_split(mode="auto", blocks=0):
    """How fs_sgemm cuts C among threads: "auto" (along N when op(A) is the smaller
    operand, else M), "n" or "m"; `blocks` the most blocks per thread (0: the default).
    No result depends on it."""
    if mode not in SPLIT_MODES:
        raise InvalidValueError(f"set_gemm_split: mode must be one of {sorted(SPLIT_MODES)}, "
                                f"got {mode!r}")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or \
            not 0 <= blocks <= FS_SPLIT_BLOCKS_MAX:
        raise InvalidValueError(f"set_gemm_split: blocks must be an int in "
                                f"[0, {FS_SPLIT_BLOCKS_MAX}], got {blocks!r}")
    if fs_set_gemm_split(SPLIT_MODES[mode], blocks) != FS_OK:  # checked above
        raise InvalidValueError(f"set_gemm_split: cannot set {mode!r}, {blocks}")


def gemm_split():
    """(mode, blocks per thread) of fs_sgemm's cut among threads."""
    cdef int mode, blocks
    fs_get_gemm_split(&mode, &blocks)
    names = {v: k for k, v in SPLIT_MODES.items()}
    return names[mode], blocks


def cache_sizes():
    """Cache bytes per core the blocking was fitted to (0: unknown)."""
    cdef int64_t l1d, l2, l3
    fs_cache_info(&l1d, &l2, &l3)
    return {"l1d": l1d, "l2": l2, "l3": l3}


def env_error():
    """None, or why FASTSEG_ISA could not be honoured."""
    cdef const char *err = fs_isa_env_error()
    return None if err == NULL else err.decode("ascii", "replace")


# ---- tuned settings (fastseg.tuning): applied when the kernels load ------------------
# The tuner (fastseg tune, or once on first use) writes the settings that beat the
# constants on this CPU to one file per instruction set (fastseg.tuning.files); they are
# set here, before any kernel runs: every runnable ISA's GEMM blocks, and the thread
# split of the ISA in use. FASTSEG_TUNE=0 keeps the constants.
import os as _os
import subprocess as _subprocess
import sys as _sys
import warnings as _warnings

from fastseg.tuning import files as _files

# What apply_tuned found for each ISA: {"file", "choices", "why", "when"}.
_tuned = {}


def _int_choice(choices, name):
    value = choices.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def apply_tuned(warn=True):
    """Set the tuned settings of this machine's files (or the constants, without one).

    Returns, per instruction set this machine runs, what was applied: the file, the
    choices used, when they were tuned, and why none were used (no file, tuning off, a
    file not to be trusted, values the kernels refuse). A corrupt or foreign file of the
    ISA in use is ignored with a warning (`warn`)."""
    current = isa_name()
    _tuned.clear()
    for isa in supported_isas():
        key = _files.key_for(isa)
        path = _files.path_for(key)
        if _files.enabled():
            choices, meta, why = _files.read(path, key)
            if choices is None and why is None:
                why = "not tuned yet"
        else:
            choices, meta, why = None, {}, "FASTSEG_TUNE=0"
        choices = choices or {}
        used = {}
        blocks = [_int_choice(choices, f"gemm.{b}") for b in ("mc", "kc", "nc")]
        if None in blocks:
            why = why or "a GEMM block in the file is not an integer"
            blocks = [0, 0, 0]
        try:
            set_blocking(*blocks, isa=isa)
        except ValueError as exc:
            why = why or f"the kernels refuse the file's blocks ({exc})"
            set_blocking(isa=isa)
        else:
            used.update({f"gemm.{b}": v for b, v in zip(("mc", "kc", "nc"), blocks) if v})
        deep = _int_choice(choices, "conv.kc_deep")
        try:
            if deep is None:
                raise ValueError("the deep K block in the file is not an integer")
            set_deep_kc(deep, isa=isa)
        except ValueError as exc:
            why = why or f"the kernels refuse the file's deep K block ({exc})"
            set_deep_kc(isa=isa)
        else:
            if deep:
                used["conv.kc_deep"] = deep
        if isa == current:
            split = choices.get("gemm.split", None)
            try:
                if split is None:
                    set_gemm_split()
                else:
                    set_gemm_split(*split)
                    used["gemm.split"] = list(split)
            except (TypeError, ValueError) as exc:
                why = why or f"the kernels refuse the file's thread split ({exc})"
                set_gemm_split()
            if warn and why is not None and path.exists() and _files.enabled() and \
                    why not in ("not tuned yet",):
                _warnings.warn(f"fastseg: tuning file {path}: {why}; the kernels use their "
                               "constants", RuntimeWarning, stacklevel=2)
        _tuned[isa] = {"file": str(path), "choices": used, "why": why if not used else None,
                       "when": meta.get("when") if isinstance(meta, dict) else None}
    _files.changed()
    return {isa: dict(v) for isa, v in _tuned.items()}


def tuned_state():
    """What :func:`apply_tuned` last applied, per instruction set (``fastseg info``)."""
    return {isa: dict(v) for isa, v in _tuned.items()}


def _writable_cache():
    """Whether the tuning folder (or the nearest folder above it that exists) takes files."""
    folder = _files.cache_dir()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return _os.access(folder, _os.W_OK | _os.X_OK)


def _first_use():
    """The first-use tuner: when this machine has no tuning file for the ISA in use, run
    the tuner once in a process of its own (a few seconds; its lock keeps it to one at a
    time on a machine), then apply what it wrote. Only a main process's main thread does
    (fastseg.tuning.files.first_use_blocked); never with FASTSEG_TUNE=0."""
    if env_error() is not None or _files.first_use_blocked() is not None:
        return
    path = _files.path_for(_files.key_for(isa_name()))
    if path.exists():
        return
    if not _writable_cache():
        _warnings.warn(f"fastseg: cannot tune the kernels for this CPU: {_files.cache_dir()} "
                       "is not writable (set FASTSEG_CACHE_DIR, or FASTSEG_TUNE=0 to silence "
                       "this); the constants stay in use", RuntimeWarning, stacklevel=2)
        return
    print("fastseg: first use on this CPU: timing the kernel settings once (a few seconds; "
          "`fastseg tune` redoes it, FASTSEG_TUNE=0 turns it off)", file=_sys.stderr, flush=True)
    env = dict(_os.environ, **{_files.CHILD_ENV: "1"})
    budget = _files.first_use_budget()
    try:
        done = _subprocess.run([_sys.executable, "-m", "fastseg.tuning.tuner", "--first-use"],
                               env=env, stdin=_subprocess.DEVNULL, stdout=_subprocess.DEVNULL,
                               stderr=_subprocess.PIPE, timeout=budget + 120)
    except (OSError, _subprocess.SubprocessError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    else:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = None if done.returncode == 0 else (lines[-1] if lines else
                                                 f"exit status {done.returncode}")
    if why is not None:
        _warnings.warn(f"fastseg: the first-use tuner failed ({why}); the constants stay in "
                       "use", RuntimeWarning, stacklevel=2)
    apply_tuned()


apply_tuned()
_first_use()
