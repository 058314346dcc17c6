/*
 * cgemm_impl.h -- the FFT convolution's complex micro-kernel: one frequency bin's
 * product Y = W X of an FS_CGEMM_MR x kc block of weight spectra and a kc x
 * FS_CGEMM_NR block of input spectra, split complex (real and imaginary parts in
 * separate runs, as the vertical FFTs read and write them). Written once with GCC/Clang
 * vector types of FS_CGEMM_LANES floats and compiled per ISA (cgemm_avx512.c,
 * cgemm_avx2.c, cgemm_generic.c), like the element-wise kernels.
 *
 * Why its own micro-kernel rather than three calls of the real one: with the real
 * kernel, Gauss's product needs its operand forms (c + d, a + b, b - a) written to
 * memory per bin, a copy of the first product's tile and three passes over the C tile;
 * here the forms are made in registers from the loaded values (two adds per B row,
 * one per A element) and the three products accumulate side by side, stored once.
 *
 *   ap: the A panel: kc x MR real parts (ap[p*MR + i]), then kc x MR imaginary
 *       parts -- exactly a panel of fs_fftconv2d's packed spectra;
 *   bp: the B panel: kc x NR real parts (bp[p*NR + j]), then kc x NR imaginary parts;
 *   yr, yi: row i of the real and imaginary results at yr + i*ldc, yi + i*ldc;
 *   next: the A panel of the caller's next call (only prefetched; ap when none).
 *
 * mults 3 (Gauss): for W = c + id, X = a + ib, k1 = (c + d) a, k2 = d (a + b),
 * k3 = c (b - a); Re = k1 - k2, Im = k1 + k3. mults 4: Re = ca - db, Im = cb + da.
 * The k sums run in order p = 0, 1, ..., each lane on its own (no reassociation): a
 * result depends on kc and the inputs, not on the tile's neighbours.
 */
#include <string.h>

#include "fftconv_internal.h"

#ifndef FS_CGEMM_SUFFIX
#error "define FS_CGEMM_SUFFIX before including cgemm_impl.h"
#endif
#define CG_CAT_(a, b) a##_##b
#define CG_CAT(a, b) CG_CAT_(a, b)
#define CGFN(name) CG_CAT(name, FS_CGEMM_SUFFIX)

#define MR FS_CGEMM_MR
#define NR FS_CGEMM_NR
#define LANES FS_CGEMM_LANES
#define NV (NR / LANES) /* vectors per B row */
#if NR % LANES != 0
#error "NR must be whole vectors"
#endif

typedef float CGFN(cg_vf) __attribute__((vector_size(4 * LANES)));
#define vf CGFN(cg_vf)

static inline vf CGFN(cg_load)(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void CGFN(cg_store)(float *p, vf v) { memcpy(p, &v, sizeof v); }

#define LOAD CGFN(cg_load)
#define STORE CGFN(cg_store)
/* A broadcast written so the compiler sees one (vbroadcastss): `(vf){0} + x` is a
 * scalar add of 0 first (not an identity for x = -0), an instruction per element that
 * at 4 x 32 also took the registers whose lack spilled three accumulators; a loop
 * filling the lanes became, at -O3, four 128-bit stores and a 512-bit reload. */
#if LANES == 4
#define SPLAT(x) ((vf){(x), (x), (x), (x)})
#elif LANES == 8
#define SPLAT(x) ((vf){(x), (x), (x), (x), (x), (x), (x), (x)})
#elif LANES == 16
#define SPLAT(x) \
    ((vf){(x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x)})
#else
#error "SPLAT: 4, 8 or 16 lanes"
#endif
/* Step p of the k loop fetches 2 MR floats of the next A panel (2 kc MR floats in
 * all, one cache line every 16 / (2 MR) steps): the weight spectra are streamed from
 * memory, one panel per call, and left to the hardware's prefetcher their misses
 * took a quarter of the kernel's time (Zen 4, one thread, kc 50: 38 G multiply-adds/s
 * over a stream of panels, 53 with this, the same as with one panel kept in L1). */
#define PREFETCH(p) __builtin_prefetch(next + (p) * 2 * MR, 0, 3)
/* Keeps a weight broadcast a vector the compiler cannot see into: otherwise it adds
 * c + d as scalars and broadcasts the sum (a shuffle on the FMA ports, one more
 * register a row); with it, two load-broadcasts and a vector add (avx512 kernel
 * alone 52.3 -> 56.7 G FMA/s; avx2 3 x 8, 31.5 -> 50.4). No effect on any value. */
#if defined(__x86_64__) || defined(__i386__)
#define OPAQUE(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define OPAQUE(v) __asm__("" : "+w"(v))
#else
#define OPAQUE(v) ((void)0)
#endif
#define FOR_ROWS _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)
#define FOR_VECS _Pragma("GCC unroll 4") for (int s = 0; s < NV; s++)

void CGFN(fs_cgemm)(fs_idx kc, const float *restrict ap, const float *restrict bp,
                    float *restrict yr, float *restrict yi, fs_idx ldc, int mults,
                    const float *next)
{
    const float *ar = ap, *ai = ap + kc * MR, *xr = bp, *xi = bp + kc * NR;
    if (mults == 3) {
        vf k1[MR][NV], k2[MR][NV], k3[MR][NV];
        FOR_ROWS FOR_VECS k1[i][s] = k2[i][s] = k3[i][s] = SPLAT(0.0f);
        for (fs_idx p = 0; p < kc; p++) {
            vf a[NV], sum[NV], dif[NV];
            PREFETCH(p);
            FOR_VECS {
                a[s] = LOAD(xr + p * NR + s * LANES);
                const vf b = LOAD(xi + p * NR + s * LANES);
                sum[s] = a[s] + b;
                dif[s] = b - a[s];
            }
            FOR_ROWS {
                vf c = SPLAT(ar[p * MR + i]), d = SPLAT(ai[p * MR + i]);
                OPAQUE(c);
                OPAQUE(d);
                FOR_VECS k3[i][s] += c * dif[s];
                FOR_VECS k2[i][s] += d * sum[s];
                c += d;
                FOR_VECS k1[i][s] += c * a[s];
            }
        }
        FOR_ROWS FOR_VECS {
            STORE(yr + i * ldc + s * LANES, k1[i][s] - k2[i][s]);
            STORE(yi + i * ldc + s * LANES, k1[i][s] + k3[i][s]);
        }
        return;
    }
    vf re[MR][NV], im[MR][NV];
    FOR_ROWS FOR_VECS re[i][s] = im[i][s] = SPLAT(0.0f);
    for (fs_idx p = 0; p < kc; p++) {
        vf a[NV], b[NV];
        PREFETCH(p);
        FOR_VECS {
            a[s] = LOAD(xr + p * NR + s * LANES);
            b[s] = LOAD(xi + p * NR + s * LANES);
        }
        FOR_ROWS {
            const vf c = SPLAT(ar[p * MR + i]), d = SPLAT(ai[p * MR + i]);
            FOR_VECS {
                re[i][s] += c * a[s];
                re[i][s] -= d * b[s];
                im[i][s] += c * b[s];
                im[i][s] += d * a[s];
            }
        }
    }
    FOR_ROWS FOR_VECS {
        STORE(yr + i * ldc + s * LANES, re[i][s]);
        STORE(yi + i * ldc + s * LANES, im[i][s]);
    }
}
