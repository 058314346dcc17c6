# cython: language_level=3, boundscheck=False, wraparound=False
"""Fused softmax cross-entropy wrapper (kernels/src/softmax_xent.c)."""
import numpy as np

from fastseg.errors import InvalidIndexError, InvalidValueError

from libc.stdint cimport int64_t

from fastseg._cy._status cimport check_status
from fastseg._cy.kernels cimport fs_idx, fs_softmax_xent


def softmax_xent(const float[:, ::1] logits, const int64_t[::1] labels, class_weights=None):
    """Mean cross-entropy of softmax(logits) against labels, and its gradient.

    Returns ``(loss, dlogits)``; weights follow torch.nn.CrossEntropyLoss.
    """
    n, k = logits.shape[0], logits.shape[1]
    if labels.shape[0] != n:
        raise InvalidValueError(f"softmax_cross_entropy: labels has {labels.shape[0]} entries, "
                                f"logits has {n} rows")
    cdef const float[::1] wv
    cdef const float *pw = NULL
    if class_weights is not None:
        wv = class_weights
        if wv.shape[0] != k:
            raise InvalidValueError(f"softmax_cross_entropy: class_weights has {wv.shape[0]} "
                                    f"entries, expected {k}")
        if k > 0:
            pw = &wv[0]
    dlogits = np.empty((n, k), dtype=np.float32)
    if n == 0:
        return float("nan"), dlogits
    if k == 0:
        raise InvalidIndexError("softmax_cross_entropy: labels must lie in [0, 0): logits "
                                "has no classes")
    cdef float[:, ::1] gv = dlogits
    cdef float loss = 0.0
    cdef fs_idx cn = n, ck = k
    cdef int st
    with nogil:
        st = fs_softmax_xent(&logits[0, 0], cn, ck, &labels[0], pw, &loss, &gv[0, 0])
    check_status(st, "softmax_cross_entropy", "labels", f"[0, {k})")
    return float(loss), dlogits
