/* The plan of a vertical FFT (fftconv_internal.h): the radices of n and the
 * twiddle factors of each Stockham pass, in double precision rounded once
 * to float. Radix 8 first, then 4 (fewest passes over the data: each pass
 * reads and writes every point, and the passes are what the transforms'
 * time goes to), then 2, 9, 3, 5, then any remaining prime by its plain
 * O(p^2) DFT. */
#include <math.h>

#include "fftconv_internal.h"

int fs_fft_plan_init(fs_fft_plan *plan, int n)
{
    if (n < 1 || n > FS_FFT_MAX_LEN) return FS_EVALUE;
    plan->n = n;
    plan->passes = 0;
    int rest = n;
    static const int small[] = {8, 4, 2, 9, 3, 5};
    int radices[FS_FFT_MAX_PASSES], count = 0;
    for (int s = 0; s < 6; s++)
        while (rest % small[s] == 0) {
            radices[count++] = small[s];
            rest /= small[s];
        }
    for (int p = 7; rest > 1 && p <= FS_FFT_MAX_RADIX; p += 2)
        while (rest % p == 0) {
            radices[count++] = p;
            rest /= p;
        }
    if (rest > 1) return FS_EVALUE; /* a prime factor above FS_FFT_MAX_RADIX */
    /* count <= log2(1024) = 10 < FS_FFT_MAX_PASSES */
    const double two_pi = 6.283185307179586476925286766559;
    int tw = 0, cs = 0, before = 1;
    for (int s = 0; s < count; s++) {
        const int p = radices[s];
        plan->radix[s] = p;
        plan->before[s] = before;
        plan->tw_at[s] = tw;
        plan->cs_at[s] = -1;
        const int big = before * p;
        for (int j = 0; j < before; j++)
            for (int q = 1; q < p; q++) {
                /* j*q < big, so the angle is reduced exactly before cos/sin */
                const double angle = two_pi * (double)(j * q) / (double)big;
                plan->tw[tw++] = (float)cos(angle);
                plan->tw[tw++] = (float)sin(angle);
            }
        if (p == 7 || p > 9) {
            plan->cs_at[s] = cs;
            for (int m = 0; m < p; m++) {
                plan->cs[cs++] = (float)cos(two_pi * m / p);
                plan->cs[cs++] = (float)sin(two_pi * m / p);
            }
        }
        before = big;
    }
    plan->passes = count;
    return FS_OK;
}
