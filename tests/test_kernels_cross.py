"""Cross-architecture check: the C kernels built natively and for aarch64 (NEON path, run under qemu).

A small C program compares every SIMD path the machine can run with the scalar path
(GEMM with row-major and transposed B, bias and ReLU epilogue; softmax; tanh). Built
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
#include "minidl_kernels.h"
static float frand(unsigned *s) { *s = *s * 1103515245u + 12345u; return ((*s >> 8) & 0xffff) / 32768.0f - 1.0f; }
/* How far two correct float32 GEMMs may be apart at C[i][j] (tests/tolerances.py): each is within
 * (k + 1)·eps·(sum_p |a_ip b_pj| + |bias_j|) of the exact value, whatever its order or FMA use. */
static double gemm_bound(const float *a, const float *b, const float *bias, int k, int n, int t, int i, int j) {
    double s = fabs(bias[j]);
    for (int p = 0; p < k; ++p) s += fabs(a[i*k + p]) * fabs(t ? b[j*k + p] : b[p*n + j]);
    return 2.0 * (k + 1) * 1.1920928955078125e-7 * s;
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
