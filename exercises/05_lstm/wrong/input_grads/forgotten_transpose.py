x, h, w_ih, w_hh = (cache[k] for k in ("x", "h", "w_ih", "w_hh"))
db = da.sum(axis=0)
return da @ w_ih, da @ w_hh, (x.T @ da).reshape(w_ih.shape), (h.T @ da).reshape(w_hh.shape), db, db.copy()
