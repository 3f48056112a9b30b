f, _, kh, kw = w.shape
dy_rows = dy.reshape(-1, f)
cols = im2col(x, kh, kw, stride, padding)
dw = (dy_rows.T @ cols).reshape(w.shape)
db = dy_rows.sum(axis=0)
dx = col2im(dy_rows @ w.reshape(f, -1), x.shape, kh, kw, stride, padding)
return dx, dw, db
