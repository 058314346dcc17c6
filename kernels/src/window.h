/*
 * window.h -- the one output-size formula of a window (convolution or
 * pooling kernel) sliding over a padded extent, for every C kernel.
 */
#ifndef FASTSEG_WINDOW_H
#define FASTSEG_WINDOW_H

#include "fastseg/kernels.h"

/* Output extent of a k-wide window moved by stride over size + 2*pad; 0 when
 * the padded input is smaller than the window, where C's truncating
 * division would otherwise give a bogus 1. */
static inline fs_idx fs_out_extent(fs_idx size, fs_idx k, fs_idx stride, fs_idx pad)
{
    fs_idx span = size + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

#endif /* FASTSEG_WINDOW_H */
