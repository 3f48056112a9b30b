f, c, kh, kw = w.shape
dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, f)
cols = im2col(x, kh, kw, stride, padding)
dw = (cols.T @ dy_rows).reshape(c, kh, kw, f).transpose(3, 0, 2, 1)
db = dy_rows.sum(axis=0)
dx = col2im(dy_rows @ w.reshape(f, -1), x.shape, kh, kw, stride, padding)
return dx, dw, db
