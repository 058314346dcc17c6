/* The obviously-right forms of fftconv.c, the C tests' oracle: the fused
 * layer computed directly in double (correlation, bias, activation, 1x1),
 * and the weight spectra in fs_fftconv2d's packed layout by the plain DFT. */
#include <math.h>
#include <stdlib.h>

#include "fastseg/kernels.h"

static double activate(int act, double z)
{
    switch (act) {
    case FS_ACT_RELU: return z > 0.0 ? z : 0.0;
    case FS_ACT_TANH: return tanh(z);
    case FS_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    default: return z;
    }
}

int fs_fftconv2d_ref(const fs_fftconv_geom *g, const float *x, const float *wt,
                     const float *bias, const float *proj_w, const float *proj_b, float *y)
{
    const fs_idx oh = g->h - g->kh + 1, ow = g->w - g->kw + 1;
    if (oh < 1 || ow < 1 || g->c < 1 || g->f < 1 || (g->p > 0 && !proj_w)) return FS_EVALUE;
    double *maps = malloc((size_t)(g->f * oh * ow) * sizeof(double));
    if (!maps) return FS_ENOMEM;
    for (fs_idx f = 0; f < g->f; f++)
        for (fs_idx i = 0; i < oh; i++)
            for (fs_idx j = 0; j < ow; j++) {
                double s = bias ? bias[f] : 0.0;
                for (fs_idx c = 0; c < g->c; c++)
                    for (fs_idx a = 0; a < g->kh; a++)
                        for (fs_idx b = 0; b < g->kw; b++)
                            s += (double)wt[((f * g->c + c) * g->kh + a) * g->kw + b] *
                                 (double)x[(c * g->h + i + a) * g->w + j + b];
                maps[(f * oh + i) * ow + j] = activate(g->act, s);
            }
    if (g->p == 0) {
        for (fs_idx i = 0; i < g->f * oh * ow; i++) y[i] = (float)maps[i];
    } else {
        for (fs_idx k = 0; k < g->p; k++)
            for (fs_idx o = 0; o < oh * ow; o++) {
                double s = proj_b ? proj_b[k] : 0.0;
                for (fs_idx f = 0; f < g->f; f++) s += (double)proj_w[k * g->f + f] * maps[f * oh * ow + o];
                y[k * oh * ow + o] = (float)s;
            }
    }
    free(maps);
    return FS_OK;
}

void fs_fftconv_spectra_ref(const float *wt, fs_idx f, fs_idx c, fs_idx kh, fs_idx kw,
                            fs_idx th, fs_idx tw, int mr, float *out)
{
    const fs_idx nv = tw / 2 + 1, nbins = th * nv, panels = (f + mr - 1) / mr;
    const double two_pi = 6.283185307179586476925286766559, scale = 1.0 / (double)(th * tw);
    for (fs_idx pn = 0; pn < panels; pn++)
        for (fs_idx v = 0; v < nv; v++)
            for (fs_idx u = 0; u < th; u++)
                for (fs_idx ci = 0; ci < c; ci++)
                    for (int i = 0; i < mr; i++) {
                        const fs_idx fi = pn * mr + i;
                        double re = 0.0, im = 0.0;
                        if (fi < f)
                            for (fs_idx a = 0; a < kh; a++)
                                for (fs_idx b = 0; b < kw; b++) {
                                    /* conj(W): + sign; angles reduced exactly first */
                                    const double t = two_pi * ((double)((u * a) % th) / th +
                                                               (double)((v * b) % tw) / tw);
                                    const double wv = wt[((fi * c + ci) * kh + a) * kw + b];
                                    re += wv * cos(t);
                                    im += wv * sin(t);
                                }
                        const fs_idx bin = v * th + u;
                        float *dst = out + ((pn * nbins + bin) * 2) * c * mr + ci * mr + i;
                        dst[0] = (float)(re * scale);
                        dst[c * mr] = (float)(im * scale);
                    }
}
