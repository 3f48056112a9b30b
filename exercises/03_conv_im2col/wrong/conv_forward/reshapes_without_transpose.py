n, _, h, wd = x.shape
f, _, kh, kw = w.shape
oh, ow = output_size(h, kh, stride, padding), output_size(wd, kw, stride, padding)
cols = im2col(x, kh, kw, stride, padding)
out = cols @ w.reshape(f, -1).T + b
return out.reshape(n, f, oh, ow)
