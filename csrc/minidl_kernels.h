/*
 * minidl_kernels.h -- the one public header of minidl's C kernels.
 *
 * Every function here is the C twin of a NumPy reference kernel in
 * minidl/backend/numpy_kernels.py and is tested against it.  The Python side
 * (the minidl/backend/c/ package) calls these through cffi.
 *
 * Conventions
 *   - float32 only; sizes, strides and offsets are int64_t and count ELEMENTS,
 *     not bytes.  Strides may be any value (including 0 or negative) where a
 *     function says "strided"; everything else expects contiguous arrays.
 *   - No function allocates memory visible to the caller; outputs are written
 *     into buffers the caller provides.
 *   - Each function runs on the SIMD path chosen at load time (the best one the
 *     CPU supports, or the one mdk_set_simd_path() forced).  All paths compute
 *     the same thing; they differ only in speed and, for sums and GEMM, in the
 *     order of float additions.
 *   - Functions that can fail return 0 on success and a negative MDK_E* code.
 */
#ifndef MINIDL_KERNELS_H
#define MINIDL_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SIMD paths and runtime dispatch (dispatch.c) ---------------------- */
#define MDK_SIMD_SCALAR 0 /* portable C, any CPU                         */
#define MDK_SIMD_AVX2 1   /* x86-64 with AVX2 + FMA + F16C (Haswell on)  */
#define MDK_SIMD_AVX512 2 /* x86-64 with AVX-512 F/DQ/BW/VL (SKX on)     */
#define MDK_SIMD_NEON 3   /* aarch64 Advanced SIMD                       */
#define MDK_SIMD_COUNT 4

#define MDK_OK 0
#define MDK_EUNKNOWN_PATH (-1) /* no such path number                       */
#define MDK_ENOT_BUILT (-2)    /* this path was not compiled into the library */
#define MDK_ENOT_SUPPORTED (-3) /* the CPU cannot run this path             */
#define MDK_ENOMEM (-4)        /* a work buffer could not be allocated      */

int mdk_simd_path(void);              /* the path in use                          */
/* Force a path; MDK_OK or an error code.  Not thread-safe: kernels running in
 * other threads (the GIL is released during kernels) may see the switch midway.
 * Call it before starting threads (it exists for MINIDL_SIMD, tests and tuning). */
int mdk_set_simd_path(int path);
int mdk_simd_built(int path);         /* 1 if the path was compiled in            */
int mdk_simd_supported(int path);     /* 1 if built and this CPU can run it       */
const char *mdk_simd_name(int path);  /* "scalar", "avx2", "avx512", "neon"       */
const char *mdk_simd_missing(int path); /* CPU features the path lacks, "" if none */

/* ---- activations (used by the fused epilogues) ------------------------- */
#define MDK_ACT_NONE 0
#define MDK_ACT_RELU 1
#define MDK_ACT_SIGMOID 2
#define MDK_ACT_TANH 3

/* ---- GEMM (gemm.c; beside it gemm_*.c, transpose.c, workspace.c) -------
 * C[m x n] = act(A[m x k] . B[k x n] + bias[n])
 * A and B are strided: A[i][p] = a[i*rsa + p*csa], B[p][j] = b[p*rsb + j*csb],
 * so transposed operands cost nothing extra (packing reads them in place).
 * C is row-major with leading dimension ldc.  bias may be NULL.            */
int mdk_sgemm(int64_t m, int64_t n, int64_t k,
              const float *a, int64_t rsa, int64_t csa,
              const float *b, int64_t rsb, int64_t csb,
              float *c, int64_t ldc, const float *bias, int act);

/* Cache blocking of one path's GEMM (KC, MC, NC); set rounds MC and NC up to
 * the micro-tile.  For tests and tuning only: not thread-safe.               */
int mdk_gemm_set_blocking(int path, int64_t kc, int64_t mc, int64_t nc);
int mdk_gemm_get_blocking(int path, int64_t out[3]);

/* Shape-specialized strategies, all on by default; each applies only where
 * it measured faster (gemm.c says when).  For tests and benchmarks, which
 * force each on and off: returns the previous set.  Not thread-safe.
 *   A_IN_PLACE: read A in place instead of packing it (few column panels)
 *   SWAP:       compute C^T = B^T A^T for small m and a transposed B
 *   B_IN_PLACE: read a 64-byte-aligned row-major B in place (small m)
 *   DOT:        narrow C (few columns) from A . W^T as dot products (AVX-512) */
#define MDK_GEMM_A_IN_PLACE 1
#define MDK_GEMM_SWAP 2
#define MDK_GEMM_B_IN_PLACE 4
#define MDK_GEMM_DOT 8
#define MDK_GEMM_ALL 15
int mdk_gemm_set_strategies(int strategies);

/* The packing buffers are kept per thread between products (allocating them
 * each call costs page faults); this frees the calling thread's buffers.     */
void mdk_gemm_release_workspace(void);

/* `batch` independent products; item t uses a + a_off[t], b + b_off[t] and
 * writes c + t*c_stride (broadcast batches simply repeat an offset).        */
int mdk_sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k,
                      const float *a, const int64_t *a_off, int64_t rsa, int64_t csa,
                      const float *b, const int64_t *b_off, int64_t rsb, int64_t csb,
                      float *c, int64_t c_stride, int64_t ldc);

/* ---- elementwise (elementwise.c), contiguous, n elements ---------------- */
#define MDK_BIN_ADD 0
#define MDK_BIN_SUB 1
#define MDK_BIN_MUL 2
#define MDK_BIN_DIV 3
#define MDK_BIN_MAX 4
#define MDK_BIN_MIN 5
void mdk_binary(int op, const float *x, const float *y, float *out, int64_t n);

#define MDK_UN_NEG 0
#define MDK_UN_ABS 1
#define MDK_UN_EXP 2
#define MDK_UN_RELU 3
#define MDK_UN_SIGMOID 4
#define MDK_UN_TANH 5
#define MDK_UN_SQRT 6
void mdk_unary(int op, const float *x, float *out, int64_t n);

/* dz = grad * act'(y), written with the activation's OUTPUT y:
 * relu' = [y > 0], sigmoid' = y (1 - y), tanh' = 1 - y^2 (none: dz = grad). */
void mdk_act_backward(const float *grad, const float *y, float *dz, int64_t n, int act);

/* ---- reductions (reductions.c) ------------------------------------------
 * x viewed as [outer][n][inner] (contiguous); out[o][i] = reduce over n.   */
void mdk_sum_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner);
void mdk_max_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner);
/* The other way round: out[m] = sum over o and i of x[o][m][i] -- every axis
 * but one, e.g. a convolution's bias gradient, the sum of an NCHW gradient
 * over (N, H, W).                                                          */
void mdk_sum_keep_axis(const float *x, float *out, int64_t outer, int64_t n, int64_t inner);

/* ---- softmax family (softmax.c), rows x cols, over the last axis -------- */
void mdk_softmax(const float *x, float *out, int64_t rows, int64_t cols);
void mdk_log_softmax(const float *x, float *out, int64_t rows, int64_t cols);
/* losses[r] = -log softmax(x[r])[t[r]]; probs = softmax(x).  Returns MDK_OK or
 * the negative of (1 + the first bad row) if a target is out of range.     */
int64_t mdk_cross_entropy_forward(const float *logits, const int64_t *targets,
                                  float *losses, float *probs, int64_t rows, int64_t cols);
/* dlogits[r] = (probs[r] - onehot(t[r])) * grad_losses[r]; same return value. */
int64_t mdk_cross_entropy_backward(const float *probs, const int64_t *targets,
                                const float *grad_losses, float *dlogits,
                                int64_t rows, int64_t cols);

/* ---- layout copies (transpose.c) ---------------------------------------- */
/* dst[b][j][i] = src[b][i][j]: `batch` row-major rows x cols matrices, each
 * transposed (NHWC <-> NCHW is this with rows = H*W, cols = C or back).     */
void mdk_transpose_batched(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols);

/* ---- convolution (conv.c, im2col.c), NCHW -------------------------------
 * The geometry of a 2-D convolution: input (n, c, h, w), weight
 * (f, c/groups, kh, kw), stride (sh, sw), zero padding (ph, pw) and dilation
 * (dh, dw).  The output is (n, f, oh, ow) with
 *     oh = (h + 2*ph - dh*(kh - 1) - 1) / sh + 1      (ow alike).
 * The caller checks it: strides and dilations >= 1, padding >= 0, groups
 * dividing c and f, oh and ow >= 1.                                       */
typedef struct {
    int64_t n, c, h, w;
    int64_t f, kh, kw;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t groups;
} mdk_conv_geometry;

/* out = act(conv(x, weight) + bias[f]): one product per image (and group)
 * whose result is the image's NCHW output, bias and activation applied in
 * its epilogue.  bias may be NULL.  MDK_OK or MDK_ENOMEM.                   */
int mdk_conv2d_forward(const mdk_conv_geometry *g, const float *x, const float *weight, const float *bias,
                       float *out, int act);
/* dx (n, c, h, w) = the gradient of the convolution with respect to x.     */
int mdk_conv2d_backward_input(const mdk_conv_geometry *g, const float *grad, const float *weight, float *dx);
/* dw (f, c/groups, kh, kw) = the gradient with respect to the weight.      */
int mdk_conv2d_backward_weight(const mdk_conv_geometry *g, const float *x, const float *grad, float *dw);

/* im2col over the batch (f and groups unused): cols (n*oh*ow, c*kh*kw),
 *     cols[(b*oh + y)*ow + x][(ch*kh + i)*kw + j] = x[b][ch][y*sh - ph + i*dh][x*sw - pw + j*dw]
 * (0 in the padding); col2im adds every patch row back (its adjoint).      */
void mdk_im2col(const mdk_conv_geometry *g, const float *x, float *cols);
void mdk_col2im(const mdk_conv_geometry *g, const float *cols, float *x);

/* ---- pooling (pool.c), NCHW ----------------------------------------------
 * kh x kw windows with stride (sh, sw) and padding (ph, pw) (padded cells
 * never win); argmax is the winner's offset i*kw + j inside its window.     */
void mdk_max_pool2d_forward(const float *x, float *out, int64_t *argmax,
                            int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw);
void mdk_max_pool2d_backward(const float *grad, const int64_t *argmax, float *dx,
                             int64_t n, int64_t c, int64_t h, int64_t w,
                             int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw);

/* ---- optimizer updates (optim.c), in place, contiguous -------------------
 * Scalars arrive already rounded to float32, exactly as NumPy rounds a Python
 * float when it meets a float32 array; the operations run in NumPy's order.  */
void mdk_sgd_update(float *param, const float *grad, float *velocity, int64_t n,
                    float lr, float momentum, float weight_decay, int nesterov);
void mdk_adagrad_update(float *param, const float *grad, float *sum_sq, int64_t n,
                        float lr, float eps, float weight_decay);
void mdk_rmsprop_update(float *param, const float *grad, float *mean_sq, int64_t n,
                        float lr, float alpha, float one_minus_alpha, float eps,
                        float weight_decay);
void mdk_adam_update(float *param, const float *grad, float *m, float *v, int64_t n,
                     float lr, float beta1, float one_minus_beta1, float beta2,
                     float one_minus_beta2, float bias_corr1, float bias_corr2,
                     float eps, float weight_decay);

/* ---- 16-bit conversion for communication (convert.c) -------------------- */
void mdk_f32_to_f16(const float *x, uint16_t *out, int64_t n);  /* IEEE, round to nearest even */
void mdk_f16_to_f32(const uint16_t *x, float *out, int64_t n);
void mdk_f32_to_trunc16(const float *x, uint16_t *out, int64_t n); /* top 16 bits */
void mdk_trunc16_to_f32(const uint16_t *x, float *out, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* MINIDL_KERNELS_H */
