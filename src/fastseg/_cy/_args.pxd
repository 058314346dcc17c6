# The argument checks the wrappers share: an output's element count, an optional bias,
# per-axis triples. Inline, so each wrapper that cimports them compiles them in (no
# extra module), as _window.pxd and _status.pxd are.
cimport cython


cdef inline check_total(str what, tuple shape):
    """An InvalidValueError naming `what` when an array of `shape` would have more
    elements than 64-bit sizes can address in bytes (Python ints: no overflow)."""
    count = 1
    for d in shape:
        count *= d
    if count > (1 << 62) // 4:
        from fastseg.errors import InvalidValueError
        raise InvalidValueError(f"{what}: a result of shape {shape} would have {count} "
                                "elements, too many")


cdef inline const float[::1] checked_bias(str what, object b, Py_ssize_t count):
    """`b` seen as `count` floats, or None when `b` is None; an InvalidValueError
    naming `what` for any other length."""
    if b is None:
        return None
    cdef const float[::1] bv = b
    if bv.shape[0] != count:
        from fastseg.errors import InvalidValueError
        raise InvalidValueError(f"{what}: b has {bv.shape[0]} entries, expected {count}")
    return bv


@cython.boundscheck(False)
cdef inline const float *data_or_null(const float[::1] v) noexcept:
    """Where v's first float is, or NULL for None or no floats: the kernels' "no
    bias". The caller keeps `v` alive while the kernel reads it."""
    if v is None or v.shape[0] == 0:
        return NULL
    return &v[0]


cdef inline tuple triple(str what, str name, object value, int minimum):
    """`value` as a (depth, height, width) tuple of ints, each at least `minimum`."""
    t = tuple([int(v) for v in value])  # a list, not a generator: see out_sizes
    if len(t) != 3 or min(t) < minimum:
        from fastseg.errors import InvalidValueError
        raise InvalidValueError(f"{what}: {name} must be 3 ints >= {minimum}, got {value!r}")
    return t


cdef inline tuple shape5(object a):
    """The shape of a 5-D memoryview, as a tuple."""
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3], a.shape[4])
