/*
 * activations_impl.h -- the element-wise activations on one chunk of an
 * array, written once with GCC/Clang vector types FS_PW_LANES floats wide
 * and compiled once per ISA by pointwise_*.c (4 lanes: SSE2, 8: AVX2, 16:
 * AVX-512). activations.c splits an array among threads and calls the
 * chunk functions of the ISA in use (pointwise.h).
 *
 * Explicit vectors rather than scalar loops left to the auto-vectoriser:
 * gcc 12 gave up on the tanh loop in its AVX2 build ("control flow in
 * loop") and ran it scalar, 2x slower than its SSE2 build, and sigmoid
 * called libm's expf per element (7 ns). Every lane is computed the same
 * way; a chunk's last few elements go through a padded vector, so within
 * one ISA every element gets the same answer wherever it sits.
 *
 * Semantics (PyTorch's): NaN propagates (relu(NaN) = NaN and its gradient
 * passes); tanh and sigmoid saturate to exactly -1/0 and 1 at the ends. The
 * formulas themselves are vecmath_impl.h's.
 */
#include <stdint.h>
#include <string.h>

#include "pointwise.h"

#define PW_CAT_(x, y) x##y
#define PW_CAT(x, y) PW_CAT_(x, y)
#define PWFN(x) PW_CAT(x, FS_PW_SUFFIX)

typedef float PWFN(vf_) __attribute__((vector_size(4 * FS_PW_LANES)));
typedef int32_t PWFN(vi_) __attribute__((vector_size(4 * FS_PW_LANES)));
#define vf PWFN(vf_)
#define vi PWFN(vi_)
#define L FS_PW_LANES

static inline vf PWFN(load_)(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void PWFN(store_)(float *p, vf v) { memcpy(p, &v, sizeof v); }

#define VM_F vf
#define VM_I vi
#include "vecmath_impl.h" /* vm_exp, vm_tanh, vm_sigmoid, vm_relu: shared with fft_impl.h */

#define LOAD PWFN(load_)
#define STORE PWFN(store_)
#define SPLAT vm_splat
#define SELECT vm_select

/* ---- the chunk functions (pointwise.h) -------------------------------------- */
/* out[i] = f(a[i], b[i]) for i < n: whole vectors, then the last n % L
 * elements through a padded one. */
#define PW_CHUNK2(name, EXPR)                                                     \
    void PWFN(name)(const float *a, const float *b, float *out, fs_idx n)         \
    {                                                                             \
        fs_idx i = 0;                                                             \
        for (; i + L <= n; i += L) {                                              \
            const vf va = LOAD(a + i), vb = LOAD(b + i);                          \
            (void)vb; /* one-input forms: dead, and dropped */                    \
            STORE(out + i, EXPR);                                                 \
        }                                                                         \
        if (i < n) {                                                              \
            float ta[L] = {0}, tb[L] = {0}, to[L];                                \
            memcpy(ta, a + i, (size_t)(n - i) * sizeof(float));                   \
            memcpy(tb, b + i, (size_t)(n - i) * sizeof(float));                   \
            const vf va = LOAD(ta), vb = LOAD(tb);                                \
            (void)vb;                                                             \
            STORE(to, EXPR);                                                      \
            memcpy(out + i, to, (size_t)(n - i) * sizeof(float));                 \
        }                                                                         \
    }

/* One-input forms pass the input twice (b unused). */
PW_CHUNK2(fs_pw_relu_, vm_relu(va))
PW_CHUNK2(fs_pw_tanh_, vm_tanh(va))
PW_CHUNK2(fs_pw_sigmoid_, vm_sigmoid(va))
/* Backward: a = the forward input x, b = dy. Both loads unconditional, so
 * relu's is a blend (a branch per element mispredicted half the time). */
PW_CHUNK2(fs_pw_relu_bwd_, SELECT(va <= 0.0f, SPLAT(0.0f), vb))
PW_CHUNK2(fs_pw_tanh_bwd_, vb * (1.0f - vm_tanh(va) * vm_tanh(va)))
PW_CHUNK2(fs_pw_sigmoid_bwd_, vb * vm_sigmoid(va) * (1.0f - vm_sigmoid(va)))

#undef vf
#undef vi
#undef L
#undef LOAD
#undef STORE
#undef SPLAT
#undef SELECT
