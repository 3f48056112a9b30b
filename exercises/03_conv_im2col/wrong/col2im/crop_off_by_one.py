n, c, h, w = x_shape
oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
patches = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
xp = np.zeros((n, c, h + 2 * padding + 1, w + 2 * padding + 1), dtype=cols.dtype)
for di in range(kh):
    for dj in range(kw):
        xp[:, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride] += patches[:, :, di, dj]
return xp[:, :, padding + 1 : padding + 1 + h, padding + 1 : padding + 1 + w]
