# The output size of a sliding window (convolution or pooling), once for the Cython
# layer; the same formula as fastseg/_shapes.py (Python) and kernels/src/window.h (C).
# Inline, so each wrapper that cimports it compiles it in: no extra module.


cdef inline object out_size(str what, object size, object kernel_size, object stride,
                            object padding):
    """Positions of a `kernel_size` window moved by `stride` over ``size + 2*padding``,
    in Python ints (no overflow). An InvalidValueError naming `what` for a kernel, stride
    or padding out of range, or a window larger than the padded input."""
    if kernel_size < 1 or stride < 1 or padding < 0:
        from fastseg.errors import InvalidValueError
        raise InvalidValueError(f"{what}: need kernel_size >= 1, stride >= 1, padding >= 0 "
                                f"(got {kernel_size}, {stride}, {padding})")
    span = size + 2 * padding - kernel_size
    if span < 0:
        from fastseg.errors import InvalidValueError
        raise InvalidValueError(f"{what}: kernel_size {kernel_size} is larger than the padded "
                                f"input ({size} + 2*{padding})")
    return span // stride + 1


cdef inline tuple out_sizes(str what, tuple size, tuple kernel_size, tuple stride,
                            tuple padding):
    """out_size along each axis of `size`, the window's arguments one per axis."""
    # A loop, not a generator expression: Cython cannot compile a generator inside an
    # inline function of a .pxd.
    out = []
    for a in range(len(size)):
        out.append(out_size(what, size[a], kernel_size[a], stride[a], padding[a]))
    return tuple(out)
