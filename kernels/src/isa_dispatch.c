/*
 * Which kernels run: one table per ISA (micro-kernel and its forms, the
 * packing of its format, the small-shape kernels, the cache blocks; and the
 * element-wise kernels of pointwise.h), and the choice among them. By
 * default the best the CPU, its OS and this build can run: avx512 > avx2 >
 * generic (cpu.c checks the CPUID flags and the XCR0 register state).
 * FASTSEG_ISA (auto|avx512|avx2|generic) is read once, at first use;
 * fs_select_isa overrides it later. The choice is one atomic int: callers
 * read it once per call and keep that table for the whole call.
 *
 * Each ISA's cache blocks start fitted to the caches (fs_blocking_fit) and
 * may be replaced at run time by measured ones (fs_set_blocking, called
 * with the tuner's choices when the Python runtime loads): the table in use
 * per ISA is one atomic pointer to an immutable table, so a call keeps the
 * blocks it started with whatever another thread sets meanwhile.
 */
#include <stdatomic.h>
#include <stdio.h> /* snprintf */
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "pointwise.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

static const char *const isa_names[FS_ISA_COUNT] = {"generic", "avx2", "avx512"};

#define TABLE(isa, MR, NR)                                                            \
    {#isa, MR, NR, 0, 0, 0, fs_ukernel_##isa, fs_ukernel_rows_##isa,                  \
     fs_ukernel_gather_b_##isa, FS_PACK_FN(pack_a, MR, NR), FS_PACK_FN(pack_b, MR, NR), \
     fs_small_dots_##isa, fs_small_rank_##isa, 0}

/* The generic kernel uses AVX2's packing format (6 x 16), so the two can
 * be compared on the same panels. Blocks are filled in by init_once. */
static fs_gemm_kernel_table tables[FS_ISA_COUNT] = {
    TABLE(generic, FS_GEMM_MR_AVX2, FS_GEMM_NR_AVX2),
#ifdef FS_HAVE_AVX2_KERNEL
    TABLE(avx2, FS_GEMM_MR_AVX2, FS_GEMM_NR_AVX2),
#else
    {"avx2", FS_GEMM_MR_AVX2, FS_GEMM_NR_AVX2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
#endif
#ifdef FS_HAVE_AVX512_KERNEL
    TABLE(avx512, FS_GEMM_MR_AVX512, FS_GEMM_NR_AVX512),
#else
    {"avx512", FS_GEMM_MR_AVX512, FS_GEMM_NR_AVX512, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
#endif
};

/* The element-wise kernels of each ISA (pointwise.h); an ISA this build
 * lacks is never chosen, its slot holds the portable ones. */
#define PW_TABLE(isa)                                                                   \
    {fs_pw_relu_##isa, fs_pw_relu_bwd_##isa, fs_pw_tanh_##isa, fs_pw_tanh_bwd_##isa,    \
     fs_pw_sigmoid_##isa, fs_pw_sigmoid_bwd_##isa, fs_pw_sgd_##isa, fs_pw_adam_##isa,   \
     fs_pw_rprop_##isa, fs_pw_maxpool_generic}
static const fs_pointwise_table pw_tables[FS_ISA_COUNT] = {
    PW_TABLE(generic),
#ifdef FS_HAVE_AVX2_KERNEL
    PW_TABLE(avx2),
#else
    PW_TABLE(generic),
#endif
#ifdef FS_HAVE_AVX512_KERNEL
    PW_TABLE(avx512),
#else
    PW_TABLE(generic),
#endif
};

/* ---- cache blocks (blocking.h) ------------------------------------------------ */
static const fs_idx isa_kc[FS_ISA_COUNT] = {FS_GEMM_KC_AVX2, FS_GEMM_KC_AVX2, FS_GEMM_KC_AVX512};
static const fs_idx isa_mc[FS_ISA_COUNT] = {FS_GEMM_MC_AVX2, FS_GEMM_MC_AVX2, FS_GEMM_MC_AVX512};
static const fs_idx isa_nc[FS_ISA_COUNT] = {FS_GEMM_NC_AVX2, FS_GEMM_NC_AVX2, FS_GEMM_NC_AVX512};

/* The largest multiple of `unit`, at least `floor`, with `bytes_each` bytes
 * per item fitting in `share` of `cache` bytes; `cap` when the cache is
 * unknown or roomier. */
static fs_idx fit(int64_t cache, double share, fs_idx bytes_each, fs_idx unit, fs_idx floor,
                  fs_idx cap)
{
    if (cache <= 0) return cap;
    fs_idx v = (fs_idx)((double)cache * share) / bytes_each / unit * unit;
    if (v < floor) v = floor;
    return v < cap ? v : cap;
}

/* blocking.h's deep K block: the fitted A block (MC x KC) in its share of L2,
 * never shorter than KC; KC itself where L2 is unknown. */
static fs_idx deep_kc(const fs_cache_sizes *cs, fs_idx mc, fs_idx kc)
{
    return cs->l2 > 0 ? fit(cs->l2, FS_BLOCK_L2_SHARE, mc * 4, 16, kc, FS_GEMM_KC_LIMIT) : kc;
}

void fs_blocking_fit(int isa, const fs_cache_sizes *cs, fs_blocking *out)
{
    const fs_idx mr = tables[isa].mr, nr = tables[isa].nr;
    const fs_idx kc = fit(cs->l1d, FS_BLOCK_L1_SHARE, nr * 4, 16, FS_GEMM_KC_MIN, isa_kc[isa]);
    out->mr = (int)mr;
    out->nr = (int)nr;
    out->kc = kc;
    out->mc = fit(cs->l2, FS_BLOCK_L2_SHARE, kc * 4, mr, mr, isa_mc[isa]);
    out->nc = fit(cs->l3, FS_BLOCK_L3_SHARE, kc * 4, nr, nr, isa_nc[isa]);
}

/* ---- blocks set at run time (fs_set_blocking) -------------------------------------
 * A caller keeps the table it got for its whole call and reads the blocks from
 * it several times (conv_fused.c sizes its workspace by them, then cuts its
 * loops by them), so a published table never changes: other blocks are another
 * table, published by one atomic pointer store. Tables are never freed (a call
 * on another thread may still hold one); each distinct blocking is made once and
 * reused, so the tuner's few dozen candidates cost a few KiB in all, and at most
 * MAX_VARIANTS are ever made. */
#define MAX_VARIANTS 1024

typedef struct variant {
    fs_gemm_kernel_table t;
    struct variant *next;
} variant;

static variant *variants; /* under variants_lock */
static int variant_count;
static _Atomic(const fs_gemm_kernel_table *) in_use[FS_ISA_COUNT];

#if defined(__unix__) || defined(__APPLE__)
static pthread_mutex_t variants_lock = PTHREAD_MUTEX_INITIALIZER;
#define LOCK() pthread_mutex_lock(&variants_lock)
#define UNLOCK() pthread_mutex_unlock(&variants_lock)
#else
#define LOCK() ((void)0)
#define UNLOCK() ((void)0)
#endif

/* ---- the choice ---------------------------------------------------------------- */
enum { ISA_UNKNOWN = -1 };

static atomic_int fs_isa;
static char env_error[200];
static int env_error_set;

static int isa_index(const char *name)
{
    for (int i = 0; i < FS_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0) return i;
    return ISA_UNKNOWN;
}

static int best_isa(void)
{
    for (int i = FS_ISA_COUNT - 1; i > 0; i--)
        if (fs_isa_usable(i)) return i;
    return FS_ISA_GENERIC;
}

/* Why `isa` cannot run here, as the end of a sentence; NULL when it can. */
static const char *why_not(int isa)
{
    if (fs_isa_usable(isa)) return NULL;
    if (!fs_isa_built(isa)) return "this build of fastseg has no kernels for it";
    fs_cpuid_words w = fs_cpuid_probe();
    fs_cpu_features f = fs_cpu_decode(&w);
    if (isa == FS_ISA_AVX2)
        return f.avx2 && f.fma ? "the OS does not save the ymm registers"
                               : "this CPU lacks AVX2 or FMA";
    return f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl && f.avx2 && f.fma
               ? "the OS does not save the zmm registers"
               : "this CPU lacks AVX-512 F, DQ, BW or VL";
}

static void init_once(void)
{
    const fs_cache_sizes *cs = fs_cache_sizes_here();
    for (int i = 0; i < FS_ISA_COUNT; i++) {
        fs_blocking b;
        fs_blocking_fit(i, cs, &b);
        tables[i].mc = b.mc;
        tables[i].kc = b.kc;
        tables[i].nc = b.nc;
        tables[i].kc_deep = deep_kc(cs, b.mc, b.kc);
        atomic_store_explicit(&in_use[i], &tables[i], memory_order_release);
    }
    int isa = best_isa();
    const char *env = getenv("FASTSEG_ISA");
    if (env && *env && strcmp(env, "auto") != 0) {
        const int want = isa_index(env);
        if (want == ISA_UNKNOWN)
            snprintf(env_error, sizeof env_error,
                     "FASTSEG_ISA=%.40s is not an instruction set fastseg knows "
                     "(expected auto, avx512, avx2 or generic)", env);
        else if (!fs_isa_usable(want))
            snprintf(env_error, sizeof env_error, "FASTSEG_ISA=%s cannot run here: %s",
                     isa_names[want], why_not(want));
        else
            isa = want;
        env_error_set = env_error[0] != '\0';
    }
    atomic_store_explicit(&fs_isa, isa, memory_order_release);
}

#if defined(__unix__) || defined(__APPLE__)
static pthread_once_t once = PTHREAD_ONCE_INIT;
#define INIT() pthread_once(&once, init_once)
#else
static int init_done;
#define INIT() (init_done ? (void)0 : (init_once(), (void)(init_done = 1)))
#endif

static int current_isa(void)
{
    INIT();
    return atomic_load_explicit(&fs_isa, memory_order_acquire);
}

static const fs_gemm_kernel_table *table_of(int isa)
{
    return atomic_load_explicit(&in_use[isa], memory_order_acquire);
}

const fs_gemm_kernel_table *fs_gemm_kernels(void) { return table_of(current_isa()); }

const fs_pointwise_table *fs_pointwise_kernels(void) { return &pw_tables[current_isa()]; }

const char *fs_isa_name(void) { return isa_names[current_isa()]; }

/* The ISA a name means here: ISA_UNKNOWN for an unknown name, else the
 * index, even when it cannot run (the caller checks). */
static int resolve(const char *name)
{
    if (name == NULL) return ISA_UNKNOWN;
    INIT();
    return strcmp(name, "auto") == 0 ? best_isa() : isa_index(name);
}

int fs_isa_supported(const char *name)
{
    const int isa = resolve(name);
    return isa == ISA_UNKNOWN ? -1 : fs_isa_usable(isa);
}

const char *fs_isa_why_not(const char *name)
{
    const int isa = resolve(name);
    return isa == ISA_UNKNOWN ? "it is not an instruction set fastseg knows" : why_not(isa);
}

int fs_select_isa(const char *name)
{
    const int isa = resolve(name);
    if (isa == ISA_UNKNOWN || !fs_isa_usable(isa)) return FS_EVALUE;
    atomic_store_explicit(&fs_isa, isa, memory_order_release);
    return FS_OK;
}

const char *fs_isa_env_error(void)
{
    INIT();
    return env_error_set ? env_error : NULL;
}

/* The ISA `name` means for the blocking calls: NULL or "auto" the one in use
 * (not the best one: the blocks asked about are the ones that run); ISA_UNKNOWN
 * when the name is unknown or cannot run here. */
static int blocking_isa(const char *name)
{
    const int isa = name == NULL || strcmp(name, "auto") == 0 ? current_isa() : resolve(name);
    return isa == ISA_UNKNOWN || !fs_isa_usable(isa) ? ISA_UNKNOWN : isa;
}

static void blocks_of(const fs_gemm_kernel_table *t, fs_blocking *out)
{
    out->mr = t->mr;
    out->nr = t->nr;
    out->mc = t->mc;
    out->kc = t->kc;
    out->nc = t->nc;
}

int fs_isa_blocking(const char *name, fs_blocking *out)
{
    const int isa = blocking_isa(name);
    if (isa == ISA_UNKNOWN) return FS_EVALUE;
    blocks_of(table_of(isa), out);
    return FS_OK;
}

int fs_isa_blocking_fitted(const char *name, fs_blocking *out)
{
    const int isa = blocking_isa(name);
    if (isa == ISA_UNKNOWN) return FS_EVALUE;
    blocks_of(&tables[isa], out);
    return FS_OK;
}

/* Whether mc, kc, nc (fitted values already put in for 0s) are blocks the
 * kernels of format mr x nr may run with (blocking.h's limits). */
static int blocks_valid(fs_idx mr, fs_idx nr, fs_idx mc, fs_idx kc, fs_idx nc)
{
    return mc >= mr && mc <= FS_GEMM_MC_LIMIT && mc % mr == 0 &&
           kc >= FS_GEMM_KC_LIMIT_MIN && kc <= FS_GEMM_KC_LIMIT &&
           nc >= nr && nc <= FS_GEMM_NC_LIMIT && nc % nr == 0 &&
           mc * kc <= FS_GEMM_A_BLOCK_LIMIT && kc * nc <= FS_GEMM_B_PANEL_LIMIT;
}

int fs_set_blocking(const char *name, fs_idx mc, fs_idx kc, fs_idx nc)
{
    const int isa = blocking_isa(name);
    if (isa == ISA_UNKNOWN || mc < 0 || kc < 0 || nc < 0) return FS_EVALUE;
    const fs_gemm_kernel_table *base = &tables[isa];
    if (mc == 0) mc = base->mc;
    if (kc == 0) kc = base->kc;
    if (nc == 0) nc = base->nc;
    if (!blocks_valid(base->mr, base->nr, mc, kc, nc)) return FS_EVALUE;
    const fs_gemm_kernel_table *chosen = NULL;
    int status = FS_OK;
    LOCK();
    if (mc == base->mc && kc == base->kc && nc == base->nc) chosen = base;
    for (variant *v = variants; v && !chosen; v = v->next)
        if (v->t.name == base->name && v->t.mc == mc && v->t.kc == kc && v->t.nc == nc)
            chosen = &v->t;
    if (!chosen) {
        variant *v = variant_count < MAX_VARIANTS ? malloc(sizeof *v) : NULL;
        if (v) {
            v->t = *base;
            v->t.mc = mc;
            v->t.kc = kc;
            v->t.nc = nc;
            v->next = variants;
            variants = v;
            variant_count++;
            chosen = &v->t;
        } else {
            status = FS_ENOMEM;
        }
    }
    if (chosen) atomic_store_explicit(&in_use[isa], chosen, memory_order_release);
    UNLOCK();
    return status;
}

/* The deep K block set per ISA (0: the fitted one); one atomic per ISA, read
 * once per call. */
static atomic_llong deep_kc_set[FS_ISA_COUNT];

fs_idx fs_gemm_deep_kc(const fs_gemm_kernel_table *kt)
{
    const int isa = resolve(kt->name);
    const fs_idx v = isa == ISA_UNKNOWN
                         ? 0
                         : (fs_idx)atomic_load_explicit(&deep_kc_set[isa], memory_order_relaxed);
    return v > 0 ? v : kt->kc_deep;
}

int fs_isa_deep_kc(const char *name, fs_idx *fitted, fs_idx *in_use)
{
    const int isa = blocking_isa(name);
    if (isa == ISA_UNKNOWN) return FS_EVALUE;
    *fitted = table_of(isa)->kc_deep;
    *in_use = fs_gemm_deep_kc(table_of(isa));
    return FS_OK;
}

int fs_set_deep_kc(const char *name, fs_idx kc)
{
    const int isa = blocking_isa(name);
    if (isa == ISA_UNKNOWN || kc < 0 || (kc > 0 && (kc < FS_GEMM_KC_LIMIT_MIN ||
                                                    kc > FS_GEMM_KC_LIMIT)))
        return FS_EVALUE;
    atomic_store_explicit(&deep_kc_set[isa], (long long)kc, memory_order_relaxed);
    return FS_OK;
}

void fs_cache_info(int64_t *l1d, int64_t *l2, int64_t *l3)
{
    const fs_cache_sizes *cs = fs_cache_sizes_here();
    *l1d = cs->l1d;
    *l2 = cs->l2;
    *l3 = cs->l3;
}
