n, c, h, w = x_shape
oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
patches = cols.reshape(n, c, kh, kw, oh, ow)
xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
for di in range(kh):
    for dj in range(kw):
        xp[:, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride] += patches[:, :, di, dj]
return xp[:, :, padding : padding + h, padding : padding + w]
