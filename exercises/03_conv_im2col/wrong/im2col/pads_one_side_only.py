n, c, h, w = x.shape
oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
xp = np.pad(x, ((0, 0), (0, 0), (padding, 2 * padding), (padding, 2 * padding)))[:, :, padding:, padding:]
patches = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
for di in range(kh):
    for dj in range(kw):
        patches[:, :, di, dj] = xp[:, :, di : di + stride * oh : stride, dj : dj + stride * ow : stride]
return patches.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)
