x, h, w_ih, w_hh = (cache[k] for k in ("x", "h", "w_ih", "w_hh"))
db = da.mean(axis=0)
return da @ w_ih, da @ w_hh, da.T @ x, da.T @ h, db, db.copy()
