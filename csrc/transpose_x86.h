/*
 * transpose_x86.h -- transposes of a square block held in vector registers:
 * 8 x 8 floats in ymm (AVX2), 16 x 16 in zmm (AVX-512).  Used by the GEMM's
 * packers (gemm_x86.c) and by the matrix transposes (transpose.c).
 * Include after <immintrin.h>, inside #if MDK_HAVE_X86.
 */
#ifndef MDK_TRANSPOSE_X86_H
#define MDK_TRANSPOSE_X86_H

/* Transpose an 8 x 8 block held in 8 ymm registers (row r -> column r). */
MDK_TARGET_AVX2 static inline void mdk_transpose8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; ++h) { /* rows 0-3 and rows 4-7 */
        s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
    }
    for (int c = 0; c < 4; ++c) { /* join the 128-bit halves */
        r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

/* Transpose a 16 x 16 block held in 16 zmm registers (row r -> column r):
 * unpack pairs of rows (2x2 blocks), then pairs of pairs (4x4 blocks inside
 * each 128-bit lane), then move 128-bit lanes around in two shuffles. */
MDK_TARGET_AVX512 static inline void mdk_transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int j = 0; j < 4; ++j) {
        __m512d a = _mm512_castps_pd(t[4 * j]), b = _mm512_castps_pd(t[4 * j + 1]);
        __m512d c = _mm512_castps_pd(t[4 * j + 2]), d = _mm512_castps_pd(t[4 * j + 3]);
        u[4 * j + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4j + c] holds rows 4j..4j+3, column 4L + c, in 128-bit lane L. */
    for (int c = 0; c < 4; ++c) {
        __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd), y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(x0, y0, 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(x1, y1, 0xdd);
    }
}


#endif /* MDK_TRANSPOSE_X86_H */
