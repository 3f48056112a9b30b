/*
 * minidl_cuda.h -- the one C ABI of minidl's CUDA kernels.
 *
 * Two libraries implement it from the same .cu sources in csrc/cuda/:
 *   real      nvcc, for a machine with a GPU and the CUDA driver;
 *   emulated  the system C++ compiler and csrc/cuda/emu/, CUDA's execution model on a CPU.
 * Python loads either through cffi (minidl/backend/cuda/) and calls the same functions.
 *
 * Conventions
 *   - Pointers named x, out, param, ... are DEVICE pointers (from mdc_malloc); host
 *     pointers appear only in the mdc_memcpy_* functions and for the small shape/stride
 *     arrays of the elementwise launchers, which are read on the host before the launch.
 *   - float32 only, except where a type says otherwise (int64 indices and targets, uint8
 *     booleans, uint16 for 16-bit floats).  Sizes and strides are int64_t and count elements.
 *   - Every launcher returns 0, a CUDA error code (> 0, cudaError_t: mdc_error_string names
 *     it), or one of the MDC_E* codes below.  Launches are asynchronous on a GPU: an error
 *     inside a kernel may only show at the next mdc_synchronize() or copy.
 *   - Nothing is launched for an empty problem (a GPU rejects a grid of 0 blocks).
 */
#ifndef MINIDL_CUDA_H
#define MINIDL_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDC_BUILD_REAL 1
#define MDC_BUILD_EMULATED 2
#define MDC_MAX_DIMS 8

#define MDC_ENOT_EMULATED (-1) /* an emulator control called on the real build      */
#define MDC_EBAD_INDEX (-2)    /* an index or target out of range (see *bad)         */
#define MDC_EBAD_ARG (-3)      /* unknown op code, too many dims, sizes out of range */

/* ---- runtime (runtime.cu) ------------------------------------------------------------ */
int mdc_build(void);                   /* MDC_BUILD_REAL or MDC_BUILD_EMULATED           */
const char *mdc_compiled_for(void);    /* "sm_80 sm_90 ..." or "emulated (g++ ...)"      */
const char *mdc_error_string(int code);
int mdc_device_count(int *count);
int mdc_device_name(int device, char *buf, int len);
int mdc_device_capability(int device, int *major, int *minor);
int mdc_malloc(void **ptr, int64_t bytes);
int mdc_free(void *ptr);
int mdc_memcpy_htod(void *dst, const void *src, int64_t bytes);
int mdc_memcpy_dtoh(void *dst, const void *src, int64_t bytes);
int mdc_memcpy_dtod(void *dst, const void *src, int64_t bytes);
int mdc_memset(void *dst, int value, int64_t bytes);
int mdc_synchronize(void);

/* ---- emulator controls (MDC_ENOT_EMULATED on the real build) ------------------------ */
int mdc_emu_set_check(int on);       /* MINIDL_CUDA_CHECK: bounds, races, uninitialized  */
int mdc_emu_set_threads(int n);      /* OS threads running blocks (1: deterministic)     */
int mdc_emu_set_stack_kib(int kib);  /* stack of each CUDA thread (default 64 KiB)       */
long mdc_emu_take_reports(char *buf, long len); /* checker reports since the last call   */
void mdc_emu_where(void);            /* for gdb: print the current kernel/thread/block   */

/* ---- elementwise with broadcasting (elementwise.cu) ----------------------------------
 * `out` is contiguous with `shape` (ndim <= MDC_MAX_DIMS); every input is read through
 * its own strides, 0 along an axis it is broadcast over.  alpha/beta: leaky_relu's slope,
 * clip's bounds.                                                                         */
#define MDC_UN_COPY 0
#define MDC_UN_NEG 1
#define MDC_UN_ABS 2
#define MDC_UN_EXP 3
#define MDC_UN_LOG 4
#define MDC_UN_SQRT 5
#define MDC_UN_SIN 6
#define MDC_UN_COS 7
#define MDC_UN_TANH 8
#define MDC_UN_SIGMOID 9
#define MDC_UN_RELU 10
#define MDC_UN_SIGN 11
#define MDC_UN_LEAKY_RELU 12
#define MDC_UN_CLIP 13
int mdc_unary(int op, const float *x, const int64_t *x_strides, float *out, int ndim, const int64_t *shape,
              float alpha, float beta);

#define MDC_BIN_ADD 0
#define MDC_BIN_SUB 1
#define MDC_BIN_MUL 2
#define MDC_BIN_DIV 3
#define MDC_BIN_MAX 4
#define MDC_BIN_MIN 5
#define MDC_BIN_POW 6
int mdc_binary(int op, const float *x, const int64_t *x_strides, const float *y, const int64_t *y_strides,
               float *out, int ndim, const int64_t *shape);

#define MDC_CMP_GT 0
#define MDC_CMP_GE 1
#define MDC_CMP_LT 2
#define MDC_CMP_LE 3
#define MDC_CMP_EQ 4
#define MDC_CMP_NE 5
int mdc_compare(int op, const float *x, const int64_t *x_strides, const float *y, const int64_t *y_strides,
                uint8_t *out, int ndim, const int64_t *shape);
int mdc_where(const uint8_t *cond, const int64_t *cond_strides, const float *x, const int64_t *x_strides,
              const float *y, const int64_t *y_strides, float *out, int ndim, const int64_t *shape);
/* Any dtype: elements of elem_size bytes (1, 2, 4 or 8), both sides strided.            */
int mdc_copy(int elem_size, const void *x, const int64_t *x_strides, void *out, const int64_t *out_strides,
             int ndim, const int64_t *shape);
int mdc_fill(int elem_size, void *out, int64_t n, uint64_t bits); /* every element = bits  */

int mdc_relu_backward(const float *grad, const float *x, float *out, int64_t n);
#define MDC_ACT_NONE 0
#define MDC_ACT_RELU 1
#define MDC_ACT_SIGMOID 2
#define MDC_ACT_TANH 3
/* out[r][j] = act(x[r][j] + bias[j]); bias may be NULL.                                 */
int mdc_bias_act_forward(const float *x, const float *bias, float *out, int64_t rows, int64_t cols, int act);
/* dz = grad * act'(y) from the activation's output y; dbias[j] = sum_r dz[r][j] (or NULL). */
int mdc_bias_act_backward(const float *grad, const float *y, float *dz, float *dbias, int64_t rows, int64_t cols,
                          int act);

/* ---- reductions (reduce.cu): x viewed as [outer][n][inner], out[o][i] = reduce over n -- */
#define MDC_RED_SUM 0
#define MDC_RED_MAX 1
#define MDC_RED_MIN 2
int mdc_reduce(int op, const float *x, float *out, int64_t outer, int64_t n, int64_t inner);
int mdc_argmax(const float *x, int64_t *out, int64_t outer, int64_t n, int64_t inner);

/* ---- softmax family (softmax.cu), rows x cols, over the last axis ------------------- */
int mdc_softmax(const float *x, float *out, int64_t rows, int64_t cols);
int mdc_log_softmax(const float *x, float *out, int64_t rows, int64_t cols);
/* MDC_EBAD_INDEX with *bad_row = the first row whose target is not in [0, cols).          */
int mdc_cross_entropy_forward(const float *logits, const int64_t *targets, float *losses, float *probs,
                              int64_t rows, int64_t cols, int64_t *bad_row);
int mdc_cross_entropy_backward(const float *probs, const int64_t *targets, const float *grad_losses,
                               float *dlogits, int64_t rows, int64_t cols, int64_t *bad_row);
/* Class targets with an ignore_index: safe[r] = 0 and valid[r] = 0 where targets[r] == ignore_index,
 * else safe[r] = targets[r] and valid[r] = 1; *ignored = how many were ignored; MDC_EBAD_INDEX with
 * *bad_row = the first row whose target is neither ignore_index nor in [0, classes).         */
int mdc_class_targets(const int64_t *targets, int64_t rows, int64_t classes, int64_t ignore_index, int64_t *safe,
                      uint8_t *valid, int64_t *ignored, int64_t *bad_row);
/* losses[r] = -log_probs[r, targets[r]];  dlogp = -grad_losses[r] at [r, targets[r]], 0 elsewhere. */
int mdc_nll_forward(const float *log_probs, const int64_t *targets, float *losses, int64_t rows, int64_t cols,
                    int64_t *bad_row);
int mdc_nll_backward(const int64_t *targets, const float *grad_losses, float *dlogp, int64_t rows, int64_t cols,
                     int64_t *bad_row);

/* ---- SGEMM in stages (gemm.cu): C = A B, row-major, contiguous --------------------------
 * `batch` products; item t uses a + t*a_batch_stride, b + t*b_batch_stride (0 repeats an
 * operand) and writes c + t*m*n.  m*k, k*n and m*n must each be < 2^31.                   */
#define MDC_GEMM_NAIVE 0
#define MDC_GEMM_COALESCED 1
#define MDC_GEMM_SHARED_TILES 2
#define MDC_GEMM_BLOCKTILE_1D 3
#define MDC_GEMM_BLOCKTILE_2D 4
#define MDC_GEMM_VECTORIZED 5
#define MDC_GEMM_STAGES 6
const char *mdc_gemm_stage_name(int stage);
int mdc_sgemm(int stage, int64_t batch, int64_t m, int64_t n, int64_t k, const float *a, int64_t a_batch_stride,
              const float *b, int64_t b_batch_stride, float *c);

/* ---- convolution helpers and pooling, NCHW (conv.cu) ---------------------------------- */
int mdc_im2col(const float *x, float *cols, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t stride, int64_t pad);
int mdc_col2im(const float *cols, float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t stride, int64_t pad);
int mdc_max_pool2d_forward(const float *x, float *out, int64_t *argmax, int64_t n, int64_t c, int64_t h, int64_t w,
                           int64_t k, int64_t stride, int64_t pad);
int mdc_max_pool2d_backward(const float *grad, const int64_t *argmax, float *dx, int64_t n, int64_t c, int64_t h,
                            int64_t w, int64_t k, int64_t stride, int64_t pad);
int mdc_avg_pool2d_forward(const float *x, float *out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                           int64_t stride, int64_t pad);
int mdc_avg_pool2d_backward(const float *grad, float *dx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                            int64_t stride, int64_t pad);

/* ---- gather and scatter of rows (gather.cu); negative indices count from the end ------
 * MDC_EBAD_INDEX with *bad = the first position of index holding an index out of range.  */
int mdc_index_select(const float *x, int64_t rows, int64_t row_size, const int64_t *index, int64_t count,
                     float *out, int64_t *bad);
/* out[index[i]] += values[i] with atomicAdd: repeated indices add up (in any order).     */
int mdc_index_add(float *out, int64_t rows, int64_t row_size, const int64_t *index, int64_t count,
                  const float *values, int64_t *bad);

/* ---- optimizer updates, in place (optim.cu) ---------------------------------------------
 * Scalars arrive rounded to float32 as NumPy rounds them; the kernels do NumPy's
 * operations in NumPy's order.  velocity (momentum 0), mean (not centered) and max_v
 * (not AMSGrad) may be NULL.                                                              */
int mdc_sgd_update(float *param, const float *grad, float *velocity, int64_t n, float lr, float momentum,
                   float one_minus_dampening, float weight_decay, int nesterov);
int mdc_adagrad_update(float *param, const float *grad, float *sum_sq, int64_t n, float lr, float eps,
                       float weight_decay);
int mdc_rmsprop_update(float *param, const float *grad, float *mean_sq, float *mean, int64_t n, float lr,
                       float alpha, float one_minus_alpha, float eps, float weight_decay);
int mdc_adam_update(float *param, const float *grad, float *m, float *v, float *max_v, int64_t n, float lr,
                    float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float bias_corr1,
                    float bias_corr2, float eps, float weight_decay);

/* ---- 16-bit floats (convert.cu) ----------------------------------------------------------- */
int mdc_f32_to_f16(const float *x, uint16_t *out, int64_t n); /* IEEE half, round to nearest even */
int mdc_f16_to_f32(const uint16_t *x, float *out, int64_t n);
int mdc_f32_to_trunc16(const float *x, uint16_t *out, int64_t n); /* the top 16 bits */
int mdc_trunc16_to_f32(const uint16_t *x, float *out, int64_t n);

/* ---- teaching demos (demos.cu): a correct kernel, its buggy twins, printf, atomics ------- */
int mdc_demo_block_sum(const float *x, float *out, int64_t n);                  /* correct       */
int mdc_demo_block_sum_missing_barrier(const float *x, float *out, int64_t n);  /* racy          */
int mdc_demo_write_past_end(float *out, int64_t n);     /* no `if (i < n)`: writes past the end  */
int mdc_demo_printf(int blocks, int threads);           /* every thread says who it is          */
int mdc_demo_atomic_count(int *counter, int blocks, int threads); /* each thread adds 1         */

#ifdef __cplusplus
}
#endif
#endif /* MINIDL_CUDA_H */
