"""Cross-architecture check: the C kernels built natively and for aarch64 (NEON path, run under qemu).

A small C program compares every SIMD path the machine can run with the scalar path
(GEMM with row-major and transposed B, bias and ReLU epilogue; softmax; tanh; convolution
forward and gradients on padded, strided, dilated, grouped and 1x1 geometries; 2x2 max
pooling; act_backward; the bias-gradient sum). Built
natively it checks the x86 paths without Python in the way; cross-compiled with
aarch64-linux-gnu-gcc and run with qemu-aarch64 it checks the NEON path, which no CI
machine here has. Skipped, with the reason, where those tools are not installed
(Debian: apt-get install gcc-aarch64-linux-gnu qemu-user).
"""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
FLAGS = ["-O2", "-std=c99", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra", "-Werror"]

CHECK_C = r"""
/* Cross-check every built SIMD path against the scalar path (used for aarch64 under qemu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "minidl_kernels.h"
static float frand(unsigned *s) { *s = *s * 1103515245u + 12345u; return ((*s >> 8) & 0xffff) / 32768.0f - 1.0f; }
/* How far two correct float32 GEMMs may be apart at C[i][j] (tests/tolerances.py): each is within
 * (k + 1)·eps·(sum_p |a_ip b_pj| + |bias_j|) of the exact value, whatever its order or FMA use. */
static double gemm_bound(const float *a, const float *b, const float *bias, int k, int n, int t, int i, int j) {
    double s = fabs(bias[j]);
    for (int p = 0; p < k; ++p) s += fabs(a[i*k + p]) * fabs(t ? b[j*k + p] : b[p*n + j]);
    return 2.0 * (k + 1) * 1.1920928955078125e-7 * s;
}
static double max_rel(const float *a, const float *b, long n) {
    double scale = 1e-30, err = 0;
    for (long i = 0; i < n; ++i) { scale = fmax(scale, fabs(a[i])); err = fmax(err, fabs(a[i] - b[i])); }
    return err / scale;
}
/* Convolutions (forward with bias + ReLU, both gradients), 2x2 max pooling, act_backward and the
 * bias-gradient sum on every path against the scalar path. */
static int check_conv(unsigned *seed) {
    mdk_conv_geometry geos[] = {
        {3, 5, 14, 13, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* padding 1: the padded frame, the strip */
        {2, 4, 11, 9, 6, 3, 2, 2, 1, 0, 1, 1, 1, 2},   /* stride (2, 1), groups 2 */
        {2, 3, 12, 12, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1},  /* dilation 2 */
        {2, 6, 5, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1},    /* 1x1: no columns */
    };
    int fails = 0;
    for (int gi = 0; gi < 4; ++gi) {
        mdk_conv_geometry *g = &geos[gi];
        long oh = (g->h + 2 * g->ph - g->dh * (g->kh - 1) - 1) / g->sh + 1;
        long ow = (g->w + 2 * g->pw - g->dw * (g->kw - 1) - 1) / g->sw + 1;
        long nx = g->n * g->c * g->h * g->w, nw = g->f * (g->c / g->groups) * g->kh * g->kw, ny = g->n * g->f * oh * ow;
        float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * g->f), *gy = malloc(4 * ny);
        float *r[3][2];
        long sizes[3] = {ny, nx, nw};
        for (long i = 0; i < nx; ++i) x[i] = frand(seed);
        for (long i = 0; i < nw; ++i) w[i] = frand(seed);
        for (long i = 0; i < g->f; ++i) b[i] = frand(seed);
        for (long i = 0; i < ny; ++i) gy[i] = frand(seed);
        for (int t = 0; t < 3; ++t) { r[t][0] = malloc(4 * sizes[t]); r[t][1] = malloc(4 * sizes[t]); }
        for (int path = 1; path < MDK_SIMD_COUNT; ++path) {
            if (!mdk_simd_supported(path)) continue;
            for (int side = 0; side < 2; ++side) {
                mdk_set_simd_path(side ? path : MDK_SIMD_SCALAR);
                mdk_conv2d_forward(g, x, w, b, r[0][side], MDK_ACT_RELU);
                mdk_conv2d_backward_input(g, gy, w, r[1][side]);
                mdk_conv2d_backward_weight(g, x, gy, r[2][side]);
            }
            const char *what[3] = {"conv forward", "conv backward_input", "conv backward_weight"};
            for (int t = 0; t < 3; ++t) {
                double err = max_rel(r[t][0], r[t][1], sizes[t]);
                if (err > 1e-5) {
                    printf("FAIL %s %s geometry %d err %g\n", what[t], mdk_simd_name(path), gi, err);
                    fails++;
                }
            }
        }
        for (int t = 0; t < 3; ++t) { free(r[t][0]); free(r[t][1]); }
        free(x); free(w); free(b); free(gy);
    }
    /* 2x2 max pooling (forward, backward), act_backward and the (0, 2, 3) sum on a 3x5x9x37 map */
    long n = 3 * 5 * 9 * 37, np_ = 3 * 5 * 4 * 18;
    float *x = malloc(4 * n), *g = malloc(4 * np_), *o[2], *d[2], *s[2];
    int64_t *am[2];
    for (long i = 0; i < n; ++i) x[i] = frand(seed);
    for (long i = 0; i < np_; ++i) g[i] = frand(seed);
    for (int k = 0; k < 2; ++k) {
        o[k] = malloc(4 * np_); d[k] = malloc(4 * n); s[k] = malloc(4 * 5); am[k] = malloc(8 * np_);
    }
    for (int path = 1; path < MDK_SIMD_COUNT; ++path) {
        if (!mdk_simd_supported(path)) continue;
        for (int side = 0; side < 2; ++side) {
            mdk_set_simd_path(side ? path : MDK_SIMD_SCALAR);
            mdk_max_pool2d_forward(x, o[side], am[side], 3, 5, 9, 37, 2, 2, 2, 2, 0, 0);
            mdk_max_pool2d_backward(g, am[side], d[side], 3, 5, 9, 37, 2, 2, 2, 2, 0, 0);
            mdk_sum_keep_axis(x, s[side], 3, 5, 9 * 37);
        }
        int same = memcmp(o[0], o[1], 4 * np_) == 0 && memcmp(am[0], am[1], 8 * np_) == 0;
        same = same && memcmp(d[0], d[1], 4 * n) == 0;
        if (!same) { printf("FAIL max pool %s\n", mdk_simd_name(path)); fails++; }
        if (max_rel(s[0], s[1], 5) > 1e-5) { printf("FAIL sum_keep_axis %s\n", mdk_simd_name(path)); fails++; }
        mdk_set_simd_path(MDK_SIMD_SCALAR); mdk_act_backward(g, o[0], d[0], np_, MDK_ACT_TANH);
        mdk_set_simd_path(path); mdk_act_backward(g, o[0], d[1], np_, MDK_ACT_TANH);
        if (memcmp(d[0], d[1], 4 * np_) != 0) { printf("FAIL act_backward %s\n", mdk_simd_name(path)); fails++; }
    }
    for (int k = 0; k < 2; ++k) { free(o[k]); free(d[k]); free(s[k]); free(am[k]); }
    free(x); free(g);
    return fails;
}
int main(void) {
    int fails = 0; unsigned seed = 1;
    int sizes[][3] = {{1,1,1},{7,33,65},{17,129,31},{65,17,127},{129,65,33},{200,300,100}};
    for (int s = 0; s < 6; ++s) {
        int m = sizes[s][0], k = sizes[s][1], n = sizes[s][2];
        float *a = malloc(sizeof(float)*m*k), *b = malloc(sizeof(float)*k*n), *bias = malloc(sizeof(float)*n);
        int rows = m > k ? m : k; float *c0 = malloc(sizeof(float)*rows*n), *c1 = malloc(sizeof(float)*rows*n);
        for (int i = 0; i < m*k; ++i) a[i] = frand(&seed);
        for (int i = 0; i < k*n; ++i) b[i] = frand(&seed);
        for (int i = 0; i < n; ++i) bias[i] = frand(&seed);
        for (int path = 1; path < MDK_SIMD_COUNT; ++path) {
            if (!mdk_simd_supported(path)) continue;
            for (int t = 0; t < 2; ++t) { /* B row-major, then B read transposed */
                mdk_set_simd_path(MDK_SIMD_SCALAR);
                mdk_sgemm(m, n, k, a, k, 1, b, t ? 1 : n, t ? k : 1, c0, n, bias, MDK_ACT_RELU);
                mdk_set_simd_path(path);
                mdk_sgemm(m, n, k, a, k, 1, b, t ? 1 : n, t ? k : 1, c1, n, bias, MDK_ACT_RELU);
                double err = 0; /* the worst ratio of difference to bound */
                for (int i = 0; i < m*n; ++i)
                    err = fmax(err, fabs(c0[i] - c1[i]) / (gemm_bound(a, b, bias, k, n, t, i / n, i % n) + 1e-300));
                if (err > 1) {
                    printf("FAIL gemm %s %dx%dx%d t=%d err/bound %g\n", mdk_simd_name(path), m, k, n, t, err);
                    fails++;
                }
            }
            /* softmax + exp-based kernels */
            mdk_set_simd_path(MDK_SIMD_SCALAR); mdk_softmax(b, c0, k, n);
            mdk_set_simd_path(path); mdk_softmax(b, c1, k, n);
            /* Same lanes and order on every path; only exp differs (FMA or not, a few ulps each): relative
             * error <= (2·4 + row-sum depth <= 16 + 2)·eps = 3e-6 for these rows, 1e-5 allowed. */
            double err = 0; for (int i = 0; i < k*n; ++i) err = fmax(err, fabs(c0[i] - c1[i]) / (fabs(c0[i]) + 1e-30));
            if (err > 1e-5) { printf("FAIL softmax %s err %g\n", mdk_simd_name(path), err); fails++; }
            mdk_set_simd_path(MDK_SIMD_SCALAR); mdk_unary(MDK_UN_TANH, b, c0, k*n);
            mdk_set_simd_path(path); mdk_unary(MDK_UN_TANH, b, c1, k*n);
            /* |tanh| <= 1, and each path is within 2·4 + 1 ulps of it (tests/tolerances.py): two paths
             * within twice that of 1, 2.1e-6 (the code is the same, only FMA differs). */
            err = 0; for (int i = 0; i < k*n; ++i) err = fmax(err, fabs(c0[i] - c1[i]));
            if (err > 2 * (2 * 4 + 1) * 1.1920928955078125e-7) {
                printf("FAIL tanh %s err %g\n", mdk_simd_name(path), err); fails++;
            }
        }
        free(a); free(b); free(bias); free(c0); free(c1);
    }
    fails += check_conv(&seed);
    printf("path %s (default) checked, %d failures\n", mdk_simd_name(mdk_simd_path()), fails);
    return fails != 0;
}
"""


def _build(cc, out, extra=()):
    source = out.with_suffix(".c")
    source.write_text(CHECK_C)
    cmd = [cc, *FLAGS, f"-I{CSRC}", str(source), *map(str, sorted(CSRC.glob("*.c"))), "-o", str(out), "-lm", *extra]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_native_paths_agree_with_scalar(tmp_path):
    exe = tmp_path / "check_native"
    _build("gcc", exe)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "0 failures" in result.stdout, result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None,
    reason="aarch64 cross tools not installed (apt-get install gcc-aarch64-linux-gnu qemu-user)",
)
def test_neon_path_under_qemu(tmp_path):
    exe = tmp_path / "check_neon"
    _build("aarch64-linux-gnu-gcc", exe, ["-static"])
    result = subprocess.run(["qemu-aarch64", str(exe)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "path neon (default) checked, 0 failures" in result.stdout, result.stdout
