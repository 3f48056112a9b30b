f, _, kh, kw = w.shape
dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, f)
cols = im2col(x, kh, kw, stride, padding)
dw = (dy_rows.T @ cols).reshape(w.shape)
db = dy.sum(axis=0)[:, 0, 0]
dx = col2im(dy_rows @ w.reshape(f, -1), x.shape, kh, kw, stride, padding)
return dx, dw, db
