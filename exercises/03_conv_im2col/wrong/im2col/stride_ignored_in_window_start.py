n, c, h, w = x.shape
oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
patches = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
for di in range(kh):
    for dj in range(kw):
        patches[:, :, di, dj] = xp[:, :, di : di + oh, dj : dj + ow]
return patches.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)
