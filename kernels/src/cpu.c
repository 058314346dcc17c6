/* CPU features and cache sizes (cpu.h). Compiled with the baseline flags:
 * it decides whether the AVX2/AVX-512 files may run, so it must not contain
 * their instructions itself. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <unistd.h>
#define FS_HAVE_PTHREAD_ONCE 1
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#define FS_X86 1
#endif

fs_cpuid_words fs_cpuid_probe(void)
{
    fs_cpuid_words w;
    memset(&w, 0, sizeof w);
#ifdef FS_X86
    unsigned a, b, c, d;
    w.max_leaf = __get_cpuid_max(0, NULL);
    if (w.max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) w.leaf1_ecx = c;
    if (w.max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        w.leaf7_ebx = b;
    }
    if (w.leaf1_ecx & (1u << 27)) { /* OSXSAVE: XGETBV is allowed */
        uint32_t lo, hi;
        /* The instruction, not the _xgetbv intrinsic: that one needs
         * -mxsave, and this file is built for the baseline CPU. */
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        w.xcr0 = ((uint64_t)hi << 32) | lo;
    }
#endif
    return w;
}

fs_cpu_features fs_cpu_decode(const fs_cpuid_words *w)
{
    fs_cpu_features f;
    memset(&f, 0, sizeof f);
    const uint32_t c1 = w->max_leaf >= 1 ? w->leaf1_ecx : 0;
    const uint32_t b7 = w->max_leaf >= 7 ? w->leaf7_ebx : 0;
    const int osxsave = (c1 >> 27) & 1, avx = (c1 >> 28) & 1;
    f.fma = (c1 >> 12) & 1;
    f.avx2 = (b7 >> 5) & 1;
    f.avx512f = (b7 >> 16) & 1;
    f.avx512dq = (b7 >> 17) & 1;
    f.avx512bw = (b7 >> 30) & 1;
    f.avx512vl = (b7 >> 31) & 1;
    f.os_ymm = osxsave && avx && (w->xcr0 & 0x6) == 0x6;
    f.os_zmm = f.os_ymm && (w->xcr0 & 0xe0) == 0xe0;
    return f;
}

int fs_cpu_runs(int isa, const fs_cpu_features *f)
{
    switch (isa) {
    case FS_ISA_GENERIC: return 1;
    case FS_ISA_AVX2: return f->avx2 && f->fma && f->os_ymm;
    case FS_ISA_AVX512:
        return f->avx2 && f->fma && f->avx512f && f->avx512dq && f->avx512bw &&
               f->avx512vl && f->os_zmm;
    default: return 0;
    }
}

int fs_isa_built(int isa)
{
    switch (isa) {
    case FS_ISA_GENERIC: return 1;
#ifdef FS_HAVE_AVX2_KERNEL
    case FS_ISA_AVX2: return 1;
#endif
#ifdef FS_HAVE_AVX512_KERNEL
    case FS_ISA_AVX512: return 1;
#endif
    default: return 0;
    }
}

/* ---- probed once ---------------------------------------------------------- */
static fs_cpu_features here_features;
static fs_cache_sizes here_caches;

/* "48K", "1024K", "32M" -> bytes; 0 when unreadable. */
static int64_t parse_size(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0) return 0;
    if (*end == 'K' || *end == 'k') v <<= 10;
    else if (*end == 'M' || *end == 'm') v <<= 20;
    else if (*end == 'G' || *end == 'g') v <<= 30;
    return (int64_t)v;
}

/* CPUs in a list such as "0-3,8,10-11" (at least 1). */
static int count_cpus(const char *s)
{
    int count = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s) break;
        long b = a;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s) break;
        }
        if (b >= a) count += (int)(b - a + 1);
        s = *end == ',' ? end + 1 : end;
        if (*end != ',') break;
    }
    return count > 0 ? count : 1;
}

static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    const int ok = fgets(buf, (int)cap, fp) != NULL;
    fclose(fp);
    if (ok) buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

static void caches_from_sysfs(fs_cache_sizes *cs)
{
    for (int index = 0; index < 16; index++) {
        char path[96], level[16], type[32], size[32], shared[256];
        const char *dir = "/sys/devices/system/cpu/cpu0/cache/index";
        snprintf(path, sizeof path, "%s%d/level", dir, index);
        if (!read_line(path, level, sizeof level)) break;
        snprintf(path, sizeof path, "%s%d/type", dir, index);
        if (!read_line(path, type, sizeof type) || strcmp(type, "Instruction") == 0) continue;
        snprintf(path, sizeof path, "%s%d/size", dir, index);
        if (!read_line(path, size, sizeof size)) continue;
        snprintf(path, sizeof path, "%s%d/shared_cpu_list", dir, index);
        const int sharers = read_line(path, shared, sizeof shared) ? count_cpus(shared) : 1;
        const int64_t share = parse_size(size) / sharers;
        switch (atoi(level)) {
        case 1: cs->l1d = share; break;
        case 2: cs->l2 = share; break;
        case 3: cs->l3 = share; break;
        default: break;
        }
    }
}

static void probe_once(void)
{
    const fs_cpuid_words w = fs_cpuid_probe();
    here_features = fs_cpu_decode(&w);
    memset(&here_caches, 0, sizeof here_caches);
    caches_from_sysfs(&here_caches);
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    /* glibc's figures are the whole cache, not a core's share (its L3 may
     * even be the host's under a hypervisor), so only L1 and L2 are used. */
    if (here_caches.l1d <= 0) here_caches.l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    if (here_caches.l2 <= 0) here_caches.l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (here_caches.l1d < 0) here_caches.l1d = 0;
    if (here_caches.l2 < 0) here_caches.l2 = 0;
}

#ifdef FS_HAVE_PTHREAD_ONCE
static pthread_once_t probe_flag = PTHREAD_ONCE_INIT;
#define PROBE() pthread_once(&probe_flag, probe_once)
#else
#define PROBE() probe_once()
#endif

int fs_isa_usable(int isa)
{
    PROBE();
    return fs_isa_built(isa) && fs_cpu_runs(isa, &here_features);
}

const fs_cache_sizes *fs_cache_sizes_here(void)
{
    PROBE();
    return &here_caches;
}
