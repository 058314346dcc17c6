/*
 * vecmath_impl.h -- e^x, tanh and sigmoid on GCC/Clang float vectors: the one
 * copy of the formulas that the element-wise activations (activations_impl.h)
 * and the FFT convolution's fused epilogue (fft_impl.h) both run, so a layer
 * gets the same activation values fused or not.
 *
 * The includer defines VM_F and VM_I, a float vector type and the int32 vector
 * type of the same lane count (its ISA's width: 4 SSE2, 8 AVX2, 16 AVX-512), before
 * including this file once per translation unit. Each lane is computed the same
 * way. The functions are always inlined: their vector arguments and returns never
 * cross a call, whose ABI would change with the ISA flags (-Wpsabi).
 *
 * Semantics (PyTorch's): NaN propagates; tanh and sigmoid saturate to exactly
 * -1/0 and 1 at the ends.
 */
#include <stdint.h>

#define VM_INLINE static inline __attribute__((always_inline))

VM_INLINE VM_F vm_splat(float a) { return (VM_F){0} + a; }

/* m ? a : b per lane, m all ones or all zeros (a comparison's result). */
VM_INLINE VM_F vm_select(VM_I m, VM_F a, VM_F b)
{
    return (VM_F)((m & (VM_I)a) | (~m & (VM_I)b));
}

VM_INLINE VM_F vm_abs(VM_F x) { return (VM_F)((VM_I)x & 0x7fffffff); }

/* Whether a comparison's result holds in every lane / in none: the AND / OR of its
 * lanes, halved by 64-bit words (a few instructions, no per-lane extracts). */
VM_INLINE uint64_t vm_fold(VM_I m, int all)
{
    uint64_t w[sizeof(VM_I) / 8];
    __builtin_memcpy(w, &m, sizeof w);
    uint64_t r = w[0];
    for (unsigned i = 1; i < sizeof w / 8; i++) r = all ? r & w[i] : r | w[i];
    return r;
}
VM_INLINE int vm_all(VM_I m) { const uint64_t r = vm_fold(m, 1); return (r & (r >> 32) & 1) != 0; }
VM_INLINE int vm_none(VM_I m) { return vm_fold(m, 0) == 0; }

/* 2^n for integer lanes n in [-252, 254]: two normal powers of two, so the
 * product rounds once even where it is subnormal (or 0). */
VM_INLINE VM_F vm_pow2(VM_I n, VM_F x)
{
    const VM_I n1 = n >> 1, n2 = n - n1;
    return x * (VM_F)((n1 + 127) << 23) * (VM_F)((n2 + 127) << 23);
}

/* e^y, y in [-104, 20]: y = n ln2 + r with |r| <= ln2/2, e^r a degree-6
 * fit, ln2 in two parts so n ln2 is exact. Below -104 it is 0 in float. */
VM_INLINE VM_F vm_exp(VM_F y)
{
    const VM_F t = y * 1.44269504f + vm_splat(0.5f);
    /* round to nearest: truncation toward zero, fixed for negative t */
    VM_I n = __builtin_convertvector(t, VM_I);
    n -= (VM_I)(__builtin_convertvector(n, VM_F) > t) & 1;
    const VM_F nf = __builtin_convertvector(n, VM_F);
    const VM_F r = (y - nf * 0.693145752f) - nf * 1.42860677e-6f;
    VM_F e = vm_splat(1.38248441e-3f);
    e = e * r + 8.37155048e-3f;
    e = e * r + 4.16682347e-2f;
    e = e * r + 1.66664607e-1f;
    e = e * r + 4.99999931e-1f;
    e = e * r + 1.00000003f;
    e = e * r + 1.0f;
    return vm_pow2(n, e);
}

/* tanh, odd and saturating: computed on |x| <= 10 (beyond, tanh rounds to
 * 1), sign restored at the end, NaN passed through.
 *   |x| < 0.625: x + x^3 * P(x^2), P a least-squares fit (<= 0.75 ulp);
 *   else:        1 - 2 / (e^(2|x|) + 1), no cancellation: the quotient is
 *                at most 0.45 here.
 * Within 2 ulp of the exact tanh over the whole range (test_pointwise.c). A vector
 * whose lanes all take one formula computes only that one: lai2d's 1000 fully connected
 * units mostly sit below 0.625 together, and the exp and divide are most of the cost
 * (the FFT path's fused tanh + 1x1 layer at 584x565: 0.27 -> 0.15 CPU s on Zen 4). Each
 * lane's value is the same whatever its neighbours (test_pointwise.c). */
VM_INLINE VM_F vm_tanh_small(VM_F ax)
{
    const VM_F t = ax * ax;
    VM_F p = vm_splat(2.17802352e-3f);
    p = p * t - 8.21497229e-3f;
    p = p * t + 2.17155527e-2f;
    p = p * t - 5.39493967e-2f;
    p = p * t + 1.33332261e-1f;
    p = p * t - 3.33333313e-1f;
    return ax + ax * (t * p);
}

VM_INLINE VM_F vm_tanh_large(VM_F ax) { return 1.0f - 2.0f / (vm_exp(2.0f * ax) + 1.0f); }

VM_INLINE VM_F vm_tanh(VM_F x)
{
    VM_F ax = vm_abs(x);
    ax = vm_select(ax < 10.0f, ax, vm_splat(10.0f)); /* NaN -> 10, restored below */
    const VM_I near0 = ax < 0.625f;
    VM_F mag;
    if (vm_all(near0)) {
        mag = vm_tanh_small(ax);
    } else if (vm_none(near0)) {
        mag = vm_tanh_large(ax);
    } else {
        mag = vm_select(near0, vm_tanh_small(ax), vm_tanh_large(ax));
    }
    const VM_I sign = (VM_I)x & ((VM_I){0} + INT32_MIN);
    return vm_select(x != x, x, (VM_F)(((VM_I)mag & 0x7fffffff) | sign));
}

/* sigmoid, stable for any x: e = e^-|x| never overflows; 1/(1+e) for
 * x >= 0, e/(1+e) below, which reaches exactly 0 (and 1) at the ends. */
VM_INLINE VM_F vm_sigmoid(VM_F x)
{
    VM_F y = -vm_abs(x);
    y = vm_select(y > -104.0f, y, vm_splat(-104.0f)); /* NaN -> -104, restored below */
    const VM_F e = vm_exp(y);
    const VM_F s = vm_select(x >= 0.0f, 1.0f / (1.0f + e), e / (1.0f + e));
    return vm_select(x != x, x, s);
}

/* relu: 0 below 0, NaN passed through (NaN < 0 is false). */
VM_INLINE VM_F vm_relu(VM_F x) { return vm_select(x < 0.0f, vm_splat(0.0f), x); }
