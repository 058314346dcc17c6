# cython: language_level=3, boundscheck=False, wraparound=False
"""In-place optimizer updates (kernels/src/optim_update.c) on flat float32
arrays; every array must have the parameter's length."""
from fastseg.errors import InvalidValueError

from fastseg._cy.kernels cimport fs_adam_update, fs_idx, fs_rprop_update, fs_sgd_update


cdef _same_lengths(str what, Py_ssize_t count, dict lengths):
    """An InvalidValueError naming `what` and the array when one of `lengths` (name:
    elements) differs from the parameter's `count`."""
    for name, got in lengths.items():
        if got != count:
            raise InvalidValueError(f"{what}: {name} has {got} elements, the parameter has "
                                    f"{count}")


def sgd_update(float[::1] p, const float[::1] g, buf, float lr, float momentum,
               float dampening, float weight_decay, bint nesterov, bint first_step):
    """torch.optim.SGD's step on p (and the momentum buffer buf, None without momentum)."""
    cdef fs_idx count = p.shape[0]
    _same_lengths("sgd_update", count, {"g": g.shape[0]})
    cdef float[::1] bv
    cdef float *pb = NULL
    if buf is not None:
        bv = buf
        _same_lengths("sgd_update", count, {"buf": bv.shape[0]})
        if count > 0:
            pb = &bv[0]
    elif momentum != 0.0:
        raise InvalidValueError("sgd_update: momentum needs a buffer (buf is None)")
    if count == 0:
        return
    with nogil:
        fs_sgd_update(&p[0], &g[0], pb, count, lr, momentum, dampening, weight_decay,
                      nesterov, first_step)


def adam_update(float[::1] p, const float[::1] g, float[::1] m, float[::1] v, float lr,
                float beta1, float beta2, float eps, float weight_decay, long long step):
    """torch.optim.Adam's step (L2 weight decay) on p, m, v; step counts from 1."""
    if step < 1:
        raise InvalidValueError(f"adam_update: step counts from 1, got {step}")
    cdef fs_idx count = p.shape[0]
    _same_lengths("adam_update", count, {"g": g.shape[0], "m": m.shape[0], "v": v.shape[0]})
    if count == 0:
        return
    cdef fs_idx st = step
    with nogil:
        fs_adam_update(&p[0], &g[0], &m[0], &v[0], count, lr, beta1, beta2, eps,
                       weight_decay, st)


def rprop_update(float[::1] p, const float[::1] g, float[::1] prev, float[::1] step_size,
                 float eta_minus, float eta_plus, float step_min, float step_max):
    """torch.optim.Rprop's step on p, updating prev and the per-element step_size."""
    cdef fs_idx count = p.shape[0]
    _same_lengths("rprop_update", count, {"g": g.shape[0], "prev": prev.shape[0],
                                          "step_size": step_size.shape[0]})
    if count == 0:
        return
    with nogil:
        fs_rprop_update(&p[0], &g[0], &prev[0], &step_size[0], count, eta_minus, eta_plus,
                        step_min, step_max)
