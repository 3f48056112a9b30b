/*
 * gemm_internal.h -- what the GEMM's files share (not installed).
 *
 *   gemm.c             the five loops, packing, the scalar micro-kernel: the file to read first
 *   gemm_x86.c         AVX2 and AVX-512 micro-kernels and packers (intrinsics)
 *   gemm_neon.c        the NEON micro-kernel (aarch64)
 *   gemm_strategies.c  shape-specialized routes for small batches (A or B in place, the swap)
 *   transpose.c        transposes in registers (the packers, the swap, NHWC <-> NCHW copies)
 *   workspace.c        per-thread work buffers, kept between calls
 */
#ifndef MDK_GEMM_INTERNAL_H
#define MDK_GEMM_INTERNAL_H

#include "mdk_internal.h"

/* A micro-kernel: C tile (MR x NR, leading dimension ldc) =
 *     accumulate ? C + A.Bp : A.Bp + bias      (bias: NR floats or NULL)
 * A is MR rows x kc, element (i, p) at a[i*rsa + p*csa]: a packed micro-panel
 * (rsa = 1, csa = MR) or the rows of the caller's matrix read in place (see
 * gemm_strategies.c).  B is kc x NR with row stride ldb: a packed micro-panel
 * (ldb = its width) or, 64-byte aligned, B itself. */
typedef void (*ukr_fn)(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bp,
                       int64_t ldb, float *restrict c, int64_t ldc, const float *restrict bias, int accumulate);

/* Pack one micro-panel: `len` rows of A (or columns of B) x kc steps, into
 * dst[p][i] = src[i*rs + p*cs], zero-padded from len up to `width`. */
typedef void (*pack_fn)(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs, int width,
                        float *restrict dst);

/* One SIMD path's GEMM: its micro-tile, cache blocks, micro-kernels and packers. */
struct gemm_cfg {
    int mr, nr;            /* micro-tile                                       */
    int64_t kc, mc, nc;    /* cache blocks: KC (L1), MC (L2), NC (L3)         */
    ukr_fn ukr;
    pack_fn pack_a_panel, pack_b_panel;
    int narrow_nr[2];      /* narrower kernels for the last columns, ascending (0: none) */
    ukr_fn narrow_ukr[2];
    int short_mr[2];       /* full-width kernels of fewer rows for the last rows, ascending (0: none) */
    ukr_fn short_ukr[2];
};

#define MDK_MR_MAX 16
#define MDK_NR_MAX 64

/* What is done to C besides the product:
 *     C = act(A.B + col_bias[j] + row_bias[i])     or, with accumulate,  C += A.B
 * col_bias is a linear layer's bias (one per output feature, a column of C);
 * row_bias a convolution's (one per output channel, a row of C when C is one
 * image's F x OH*OW output); accumulate sums products over a batch of images
 * (a convolution's weight gradient) and takes no bias or activation. */
struct gemm_epilogue {
    const float *col_bias; /* n floats or NULL */
    const float *row_bias; /* m floats or NULL */
    int act;               /* MDK_ACT_* */
    int accumulate;
};

/* The product with an epilogue: mdk_sgemm is this with a column bias.  Used
 * by the convolutions (conv.c) for their per-image products. */
int mdk_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
             int64_t rsb, int64_t csb, float *c, int64_t ldc, const struct gemm_epilogue *ep);

/* The five loops for one product whose packing buffers ap and bp are allocated (gemm.c). */
void mdk_gemm_blocked(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                      int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc,
                      const struct gemm_epilogue *ep, float *ap, float *bp);
/* Packing buffers for products up to m x n x k from the thread's workspace (gemm.c). */
int mdk_gemm_buffers(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, float **ap, float **bp);
/* The active path's configuration (gemm.c). */
const struct gemm_cfg *mdk_gemm_cfg(void);

/* Any-strides packer, plain C: the scalar and NEON paths use it for every
 * panel, the x86 packers for the layouts they have no special case for.
 * `static inline` so a copy inlined into an AVX2 function is compiled for AVX2. */
static inline void mdk_pack_panel_body(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs, int width,
                                       float *restrict dst)
{
    if (len == width && rs == 1) { /* contiguous across the panel: a copy per k step */
        for (int64_t p = 0; p < kc; ++p)
            for (int i = 0; i < width; ++i)
                dst[p * width + i] = src[p * cs + i];
    } else if (len == width && cs == 1) { /* contiguous along k: read rows, write down lanes */
        for (int i = 0; i < width; ++i) {
            const float *row = src + i * rs;
            for (int64_t p = 0; p < kc; ++p)
                dst[p * width + i] = row[p];
        }
    } else {
        for (int64_t p = 0; p < kc; ++p) {
            for (int64_t i = 0; i < len; ++i)
                dst[p * width + i] = src[i * rs + p * cs];
            for (int64_t i = len; i < width; ++i)
                dst[p * width + i] = 0.0f;
        }
    }
}

/* ---- ISA micro-kernels and packers (gemm_x86.c, gemm_neon.c) ------------ */
#if MDK_HAVE_X86
enum { A2_MR = 6, A2_NR = 16 }; /* AVX2 + FMA: 6 x 16 */
enum { A5_MR = 6, A5_NR = 64 }; /* AVX-512: 6 x 64 */
MDK_TARGET_AVX2 void mdk_ukr_avx2(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                  const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                  const float *restrict bias, int accumulate);
MDK_TARGET_AVX2 void mdk_ukr_avx2_n8(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                     const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                     const float *restrict bias, int accumulate);
MDK_TARGET_AVX512 void mdk_ukr_avx512(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                      const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                      const float *restrict bias, int accumulate);
MDK_TARGET_AVX512 void mdk_ukr_avx512_n16(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                          const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                          const float *restrict bias, int accumulate);
MDK_TARGET_AVX512 void mdk_ukr_avx512_m2(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                         const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                         const float *restrict bias, int accumulate);
MDK_TARGET_AVX512 void mdk_ukr_avx512_m4(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                         const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                         const float *restrict bias, int accumulate);
MDK_TARGET_AVX512 void mdk_ukr_avx512_n32(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                                          const float *restrict bp, int64_t ldb, float *restrict c, int64_t ldc,
                                          const float *restrict bias, int accumulate);
/* C (m x n) = act(A . W^T + bias) as dot products of rows of A and of W (gemm_x86.c; see
 * mdk_gemm_try_dot): A row i at a + i*lda, W row j at w + j*ldw, both contiguous along k. */
MDK_TARGET_AVX512 void mdk_gemm_dot_avx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                           const float *w, int64_t ldw, float *c, int64_t ldc, const float *bias,
                                           int act);
/* The same with AVX2 + FMA (gemm_x86.c): the route on machines without AVX-512. */
MDK_TARGET_AVX2 void mdk_gemm_dot_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *w,
                                       int64_t ldw, float *c, int64_t ldc, const float *bias, int act);
MDK_TARGET_AVX2 void mdk_pack_panel_avx2(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs,
                                         int width, float *restrict dst);
MDK_TARGET_AVX512 void mdk_pack_panel_avx512(int64_t len, int64_t kc, const float *src, int64_t rs, int64_t cs,
                                             int width, float *restrict dst);
#endif
#if MDK_HAVE_NEON
enum { NE_MR = 8, NE_NR = 12 }; /* NEON: 8 x 12 */
void mdk_ukr_neon(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bp,
                  int64_t ldb, float *restrict c, int64_t ldc, const float *restrict bias, int accumulate);
#endif

/* ---- small-size strategies (gemm_strategies.c) -------------------------- */
int mdk_gemm_a_in_place(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t rsa, int64_t csa);
int mdk_gemm_b_in_place(int64_t m, const float *b, int64_t rsb, int64_t csb);
/* Computes the product as C^T = B^T A^T when that pays (see the file);
 * returns 1 if it did (or MDK_ENOMEM), 0 if the caller should run it as is. */
int mdk_gemm_try_swapped(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                         int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc,
                         const struct gemm_epilogue *ep, int *err);

/* Computes a narrow product as dot products when that pays (see the file); returns 1 if
 * it did, 0 if the caller should run it as is. */
int mdk_gemm_try_dot(const struct gemm_cfg *cfg, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                     int64_t csa, const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc,
                     const struct gemm_epilogue *ep);

/* ---- transposes (transpose.c) ------------------------------------------- */
/* dst (cols x rows, leading dimension ldd) = src (rows x cols, leading dimension lds)^T */
void mdk_transpose(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t rows, int64_t cols);

/* ---- per-thread workspaces (workspace.c) -------------------------------- */
enum mdk_workspace_slot {
    MDK_WS_PACK_A,   /* the packed A block                       */
    MDK_WS_PACK_B,   /* the packed B block                       */
    MDK_WS_SWAP,     /* C^T of a swapped product                 */
    MDK_WS_CONV,     /* one image's columns (conv.c)             */
    MDK_WS_CONV_PAD, /* one image, zero-padded (conv.c)          */
    MDK_WS_CONV_AUX, /* W^T, or dW^T being summed (conv.c)     */
    MDK_WS_COUNT
};
/* At least `floats` floats, 64-byte aligned, owned by the calling thread and
 * kept until it exits (or mdk_gemm_release_workspace); NULL if out of memory.
 * A later call for the same slot may move the buffer. */
float *mdk_workspace(enum mdk_workspace_slot slot, size_t floats);

#endif /* MDK_GEMM_INTERNAL_H */
