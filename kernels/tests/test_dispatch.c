/*
 * The ISA decision and the blocking table, fed with the CPUID/XGETBV words
 * and cache sizes of CPUs this machine is not: a Zen 3 (AVX2 only), a Zen 4
 * and a Xeon (AVX-512), a CPU with AVX-512 under an OS that does not save
 * the zmm registers, one without OSXSAVE, and a Xeon Phi (AVX-512F without
 * BW/VL). Then this machine's own answers must be consistent with them.
 */
#include <string.h>

#include "cpu.h"
#include "gemm_internal.h"
#include "harness.h"

/* CPUID leaf 1 ECX: FMA (12), OSXSAVE (27), AVX (28). */
#define L1_AVX_FMA ((1u << 12) | (1u << 27) | (1u << 28))
/* Leaf 7 EBX: AVX2 (5), AVX-512 F (16), DQ (17), BW (30), VL (31). */
#define L7_AVX2 (1u << 5)
#define L7_AVX512 (L7_AVX2 | (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31))
/* XCR0: x87|SSE|AVX = 0x7; with opmask|ZMM_Hi256|Hi16_ZMM = 0xe7. */
#define XCR0_YMM 0x7u
#define XCR0_ZMM 0xe7u

static int best(fs_cpuid_words w)
{
    const fs_cpu_features f = fs_cpu_decode(&w);
    for (int isa = FS_ISA_COUNT - 1; isa > 0; isa--)
        if (fs_cpu_runs(isa, &f)) return isa;
    return FS_ISA_GENERIC;
}

static void test_decisions(void)
{
    const fs_cpuid_words zen3 = {16, L1_AVX_FMA, L7_AVX2, XCR0_YMM};
    const fs_cpuid_words avx512 = {16, L1_AVX_FMA, L7_AVX512, XCR0_ZMM};
    const fs_cpuid_words no_zmm_os = {16, L1_AVX_FMA, L7_AVX512, XCR0_YMM};
    const fs_cpuid_words no_osxsave = {16, L1_AVX_FMA & ~(1u << 27), L7_AVX512, 0};
    const fs_cpuid_words knl = {16, L1_AVX_FMA, L7_AVX2 | (1u << 16), XCR0_ZMM};
    const fs_cpuid_words no_leaf7 = {1, L1_AVX_FMA, L7_AVX512, XCR0_ZMM};
    const fs_cpuid_words old = {13, (1u << 27) | (1u << 28), 0, XCR0_YMM}; /* AVX, no FMA */
    FS_CHECK_EQ_INT(best(zen3), FS_ISA_AVX2);
    FS_CHECK_EQ_INT(best(avx512), FS_ISA_AVX512);
    FS_CHECK_EQ_INT(best(no_zmm_os), FS_ISA_AVX2);   /* flags alone are not enough */
    FS_CHECK_EQ_INT(best(no_osxsave), FS_ISA_GENERIC);
    FS_CHECK_EQ_INT(best(knl), FS_ISA_AVX2);         /* F without BW/VL */
    FS_CHECK_EQ_INT(best(no_leaf7), FS_ISA_GENERIC); /* leaf 7 not there: not read */
    FS_CHECK_EQ_INT(best(old), FS_ISA_GENERIC);
    const fs_cpu_features f = fs_cpu_decode(&no_zmm_os);
    FS_CHECK(f.avx512f && f.os_ymm && !f.os_zmm, "decoded %d %d %d", f.avx512f, f.os_ymm,
             f.os_zmm);
    FS_CHECK(!fs_cpu_runs(FS_ISA_COUNT, &f), "an ISA past the table runs");
}

/* The blocks of one ISA on one CPU's caches, and what must hold of them. */
static void check_fit(const char *cpu, int isa, fs_cache_sizes cs, fs_idx want_kc,
                      fs_idx want_mc)
{
    fs_blocking b;
    fs_blocking_fit(isa, &cs, &b);
    printf("%-28s isa %d: MR %d NR %d KC %lld MC %lld NC %lld\n", cpu, isa, b.mr, b.nr,
           (long long)b.kc, (long long)b.mc, (long long)b.nc);
    FS_CHECK(b.kc == want_kc, "%s isa %d: KC %lld, expected %lld", cpu, isa, (long long)b.kc,
             (long long)want_kc);
    FS_CHECK(b.mc == want_mc, "%s isa %d: MC %lld, expected %lld", cpu, isa, (long long)b.mc,
             (long long)want_mc);
    FS_CHECK(b.mc % b.mr == 0 && b.nc % b.nr == 0 && b.kc >= FS_GEMM_KC_MIN && b.mc >= b.mr &&
                 b.nc >= b.nr, "%s isa %d: blocks not whole tiles", cpu, isa);
    /* Whatever the caches: the packed blocks fit the shares blocking.h gives. */
    if (cs.l1d > 0 && b.kc > FS_GEMM_KC_MIN)
        FS_CHECK((double)b.kc * b.nr * 4 <= FS_BLOCK_L1_SHARE * (double)cs.l1d,
                 "%s: B micro-panel past its L1 share", cpu);
    if (cs.l2 > 0 && b.mc > b.mr)
        FS_CHECK((double)b.mc * b.kc * 4 <= FS_BLOCK_L2_SHARE * (double)cs.l2,
                 "%s: A block past its L2 share", cpu);
    if (cs.l3 > 0 && b.nc > b.nr)
        FS_CHECK((double)b.nc * b.kc * 4 <= FS_BLOCK_L3_SHARE * (double)cs.l3,
                 "%s: B panel past its L3 share", cpu);
}

static void test_blocking(void)
{
    const int64_t K = 1024, M = 1024 * 1024;
    const fs_cache_sizes zen3 = {32 * K, 512 * K, 4 * M};   /* 32 MiB L3 / 8 cores */
    const fs_cache_sizes zen4 = {32 * K, 1 * M, 4 * M};
    const fs_cache_sizes zen5 = {48 * K, 1 * M, 16 * M};    /* this CI machine's VM */
    const fs_cache_sizes xeon = {48 * K, 2 * M, 1875 * K};  /* Sapphire Rapids */
    const fs_cache_sizes unknown = {0, 0, 0};
    const fs_cache_sizes tiny = {8 * K, 64 * K, 0};
    /* AVX2 keeps the blocks it was tuned with on every CPU it runs on. */
    check_fit("Zen 3", FS_ISA_AVX2, zen3, FS_GEMM_KC_AVX2, FS_GEMM_MC_AVX2);
    check_fit("Zen 4", FS_ISA_AVX2, zen4, FS_GEMM_KC_AVX2, FS_GEMM_MC_AVX2);
    check_fit("Zen 5", FS_ISA_AVX2, zen5, FS_GEMM_KC_AVX2, FS_GEMM_MC_AVX2);
    check_fit("Xeon", FS_ISA_AVX2, xeon, FS_GEMM_KC_AVX2, FS_GEMM_MC_AVX2);
    check_fit("generic, caches unknown", FS_ISA_GENERIC, unknown, FS_GEMM_KC_AVX2,
              FS_GEMM_MC_AVX2);
    /* AVX-512's twice-as-wide B micro-panel: KC follows L1d. */
    check_fit("Zen 4", FS_ISA_AVX512, zen4, 128, FS_GEMM_MC_AVX512);
    check_fit("Zen 5", FS_ISA_AVX512, zen5, 192, FS_GEMM_MC_AVX512);
    check_fit("Xeon", FS_ISA_AVX512, xeon, 192, FS_GEMM_MC_AVX512);
    check_fit("avx512, caches unknown", FS_ISA_AVX512, unknown, FS_GEMM_KC_AVX512,
              FS_GEMM_MC_AVX512);
    /* Tiny caches: the floors, and MC shrunk to the L2 share. */
    check_fit("8 KiB L1d, 64 KiB L2", FS_ISA_AVX2, tiny, FS_GEMM_KC_MIN,
              (fs_idx)(0.5 * 64 * K) / (FS_GEMM_KC_MIN * 4) / FS_GEMM_MR_AVX2 * FS_GEMM_MR_AVX2);
}

/* This machine: its answers agree with each other and with the tables. */
static void test_here(void)
{
    int64_t l1d, l2, l3;
    fs_cache_info(&l1d, &l2, &l3);
    printf("this CPU: L1d %lld, L2 %lld, L3 %lld bytes per core; ISA %s\n", (long long)l1d,
           (long long)l2, (long long)l3, fs_isa_name());
    FS_CHECK(l1d >= 0 && l2 >= 0 && l3 >= 0, "negative cache size");
    const char *names[] = {"generic", "avx2", "avx512"};
    for (int isa = 0; isa < FS_ISA_COUNT; isa++) {
        const int ok = fs_isa_supported(names[isa]);
        FS_CHECK(ok == fs_isa_usable(isa), "%s: supported %d, usable %d", names[isa], ok,
                 fs_isa_usable(isa));
        fs_blocking b;
        const int st = fs_isa_blocking(names[isa], &b);
        FS_CHECK(st == (ok ? FS_OK : FS_EVALUE), "%s: blocking status %d", names[isa], st);
        if (st != FS_OK) continue;
        fs_blocking want;
        const fs_cache_sizes cs = {l1d, l2, l3};
        fs_blocking_fit(isa, &cs, &want);
        FS_CHECK(memcmp(&b, &want, sizeof b) == 0, "%s: blocks differ from the fit", names[isa]);
    }
    /* The default is the best usable one. */
    int best_here = FS_ISA_GENERIC;
    for (int isa = FS_ISA_COUNT - 1; isa > 0 && best_here == FS_ISA_GENERIC; isa--)
        if (fs_isa_usable(isa)) best_here = isa;
    FS_CHECK_EQ_INT(fs_select_isa("auto"), FS_OK);
    FS_CHECK(strcmp(fs_isa_name(), names[best_here]) == 0, "auto chose %s, expected %s",
             fs_isa_name(), names[best_here]);
}

/* The run-time setters (the tuner's): values outside the limits, names that
 * cannot run here, and bad splits are refused and change nothing; 0 means
 * the fitted block; a blocking set for one ISA leaves the others alone. */
static void test_setters(void)
{
    fs_blocking fit, now;
    FS_REQUIRE(fs_isa_blocking_fitted(NULL, &fit) == FS_OK, "no fitted blocking");
    const fs_idx mr = fit.mr, nr = fit.nr;
    const fs_idx bad[][3] = {
        {mr + 1, 0, 0}, {-mr, 0, 0}, {FS_GEMM_MC_LIMIT + mr, 0, 0},
        {0, FS_GEMM_KC_LIMIT_MIN - 1, 0}, {0, FS_GEMM_KC_LIMIT + 1, 0}, {0, -1, 0},
        {0, 0, nr + 1}, {0, 0, FS_GEMM_NC_LIMIT + nr}, {0, 0, -nr},
        /* each within its range, the packed blocks too big together */
        {FS_GEMM_MC_LIMIT / mr * mr, FS_GEMM_KC_LIMIT, 0},
        {0, FS_GEMM_KC_LIMIT, FS_GEMM_NC_LIMIT / nr * nr},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FS_CHECK(fs_set_blocking(NULL, bad[i][0], bad[i][1], bad[i][2]) == FS_EVALUE,
                 "blocks %lld %lld %lld accepted", (long long)bad[i][0], (long long)bad[i][1],
                 (long long)bad[i][2]);
        FS_REQUIRE(fs_isa_blocking(NULL, &now) == FS_OK, "no blocking");
        FS_CHECK(memcmp(&now, &fit, sizeof now) == 0, "a refused blocking changed the blocks");
    }
    FS_CHECK_EQ_INT(fs_set_blocking("no-such-isa", 0, 0, 0), FS_EVALUE);
    const char *names[] = {"generic", "avx2", "avx512"};
    for (int isa = 0; isa < FS_ISA_COUNT; isa++)
        if (!fs_isa_usable(isa))
            FS_CHECK_EQ_INT(fs_set_blocking(names[isa], 0, 0, 0), FS_EVALUE);
    /* Set the generic ISA's blocks: the one in use keeps its own (unless it is generic). */
    FS_CHECK_EQ_INT(fs_set_blocking("generic", 2 * FS_GEMM_MR_AVX2, 100, 4 * FS_GEMM_NR_AVX2),
                    FS_OK);
    FS_REQUIRE(fs_isa_blocking("generic", &now) == FS_OK, "no generic blocking");
    FS_CHECK(now.mc == 2 * FS_GEMM_MR_AVX2 && now.kc == 100 && now.nc == 4 * FS_GEMM_NR_AVX2,
             "generic blocks %lld %lld %lld", (long long)now.mc, (long long)now.kc,
             (long long)now.nc);
    if (strcmp(fs_isa_name(), "generic") != 0) {
        FS_REQUIRE(fs_isa_blocking(NULL, &now) == FS_OK, "no blocking");
        FS_CHECK(memcmp(&now, &fit, sizeof now) == 0, "another ISA's blocks changed these");
    }
    FS_CHECK_EQ_INT(fs_set_blocking("generic", 0, 0, 0), FS_OK);
    FS_CHECK_EQ_INT(fs_isa_blocking_fitted("no-such-isa", &now), FS_EVALUE);
    /* The same blocks asked for twice reuse one table; many distinct ones are fine. */
    for (int rep = 0; rep < 100; rep++)
        FS_CHECK_EQ_INT(fs_set_blocking(NULL, mr * (1 + rep % 7), 16 + rep % 11, nr), FS_OK);
    FS_CHECK_EQ_INT(fs_set_blocking(NULL, 0, 0, 0), FS_OK);
    FS_REQUIRE(fs_isa_blocking(NULL, &now) == FS_OK, "no blocking");
    FS_CHECK(memcmp(&now, &fit, sizeof now) == 0, "0, 0, 0 did not restore the fit");

    /* The deep K block: fitted at least KC, refused out of range, 0 the fitted,
     * other blocks set leave it. */
    fs_idx deep_fit, deep_now;
    FS_REQUIRE(fs_isa_deep_kc(NULL, &deep_fit, &deep_now) == FS_OK, "no deep K block");
    FS_CHECK(deep_fit >= fit.kc && deep_fit <= FS_GEMM_KC_LIMIT && deep_now == deep_fit,
             "deep K block %lld (now %lld), KC %lld", (long long)deep_fit, (long long)deep_now,
             (long long)fit.kc);
    const fs_idx bad_deep[] = {-1, FS_GEMM_KC_LIMIT_MIN - 1, FS_GEMM_KC_LIMIT + 1};
    for (size_t i = 0; i < sizeof bad_deep / sizeof bad_deep[0]; i++)
        FS_CHECK_EQ_INT(fs_set_deep_kc(NULL, bad_deep[i]), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_set_deep_kc("no-such-isa", 64), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_set_deep_kc(NULL, 512), FS_OK);
    FS_CHECK_EQ_INT(fs_set_blocking(NULL, 2 * mr, 64, nr), FS_OK);
    FS_REQUIRE(fs_isa_deep_kc(NULL, &deep_fit, &deep_now) == FS_OK, "no deep K block");
    FS_CHECK(deep_now == 512, "the deep K block %lld after other blocks were set",
             (long long)deep_now);
    FS_CHECK_EQ_INT(fs_set_blocking(NULL, 0, 0, 0), FS_OK);
    FS_CHECK_EQ_INT(fs_set_deep_kc(NULL, 0), FS_OK);
    FS_REQUIRE(fs_isa_deep_kc(NULL, &deep_fit, &deep_now) == FS_OK, "no deep K block");
    FS_CHECK(deep_now == deep_fit, "0 did not restore the fitted deep K block");

    int mode, blocks;
    fs_get_gemm_split(&mode, &blocks);
    FS_CHECK(mode == FS_SPLIT_AUTO && blocks == 4, "default split %d/%d", mode, blocks);
    FS_CHECK_EQ_INT(fs_set_gemm_split(-1, 0), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_set_gemm_split(FS_SPLIT_M + 1, 0), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_set_gemm_split(FS_SPLIT_AUTO, -1), FS_EVALUE);
    FS_CHECK_EQ_INT(fs_set_gemm_split(FS_SPLIT_AUTO, FS_SPLIT_BLOCKS_MAX + 1), FS_EVALUE);
    fs_get_gemm_split(&mode, &blocks);
    FS_CHECK(mode == FS_SPLIT_AUTO && blocks == 4, "a refused split changed it: %d/%d", mode,
             blocks);
    FS_CHECK_EQ_INT(fs_set_gemm_split(FS_SPLIT_M, 2), FS_OK);
    fs_get_gemm_split(&mode, &blocks);
    FS_CHECK(mode == FS_SPLIT_M && blocks == 2, "split %d/%d", mode, blocks);
    FS_CHECK_EQ_INT(fs_set_gemm_split(FS_SPLIT_AUTO, 0), FS_OK);
}

int main(void)
{
    fs_test_isa_from_env();
    test_decisions();
    test_blocking();
    test_here();
    test_setters();
    return fs_test_done();
}
