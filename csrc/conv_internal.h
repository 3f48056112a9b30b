/*
 * conv_internal.h -- what the convolution files share (not installed):
 * output sizes, and one image's patches in the two layouts of im2col.c.
 */
#ifndef MDK_CONV_INTERNAL_H
#define MDK_CONV_INTERNAL_H

#include "mdk_internal.h"

/* Output length along one axis: (size + 2p - d(k - 1) - 1) / s + 1. */
static inline int64_t mdk_conv_out(int64_t size, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (size + 2 * p - d * (k - 1) - 1) / s + 1;
}
static inline int64_t mdk_conv_oh(const mdk_conv_geometry *g) { return mdk_conv_out(g->h, g->kh, g->sh, g->ph, g->dh); }
static inline int64_t mdk_conv_ow(const mdk_conv_geometry *g) { return mdk_conv_out(g->w, g->kw, g->sw, g->pw, g->dw); }

/* The zero-padded frame of one image: channels x hp x wp. */
static inline int64_t mdk_conv_hp(const mdk_conv_geometry *g) { return g->h + 2 * g->ph; }
static inline int64_t mdk_conv_wp(const mdk_conv_geometry *g) { return g->w + 2 * g->pw; }
/* xp's interior (offset ph, pw) = one image x (channels x h x w); xp's border
 * is not touched (the caller zeroes it once).  crop is the way back. */
void mdk_pad_image(const mdk_conv_geometry *g, int64_t channels, const float *x, float *xp);
void mdk_crop_image(const mdk_conv_geometry *g, int64_t channels, const float *xp, float *x);

/* One image's patches, with a leading dimension ld (>= the row length) so
 * rows can start 64-byte aligned, K = channels*kh*kw and P = OH*OW:
 *   rows:   P x K, rows[p*ld + (c*kh + i)*kw + j], from the image x itself;
 *   planes: K x P, planes[((c*kh + i)*kw + j)*ld + p], from its padded frame
 *           xp (x itself when there is no padding).
 * The col2im versions add into x (or xp). */
void mdk_im2col_rows(const mdk_conv_geometry *g, int64_t channels, const float *x, float *rows, int64_t ld);
void mdk_col2im_rows(const mdk_conv_geometry *g, int64_t channels, const float *rows, int64_t ld, float *x);
void mdk_im2col_planes(const mdk_conv_geometry *g, int64_t channels, const float *xp, float *planes, int64_t ld);
void mdk_col2im_planes(const mdk_conv_geometry *g, int64_t channels, const float *planes, int64_t ld, float *xp);

#endif /* MDK_CONV_INTERNAL_H */
