i, f, g, o = (cache[k] for k in ("i", "f", "g", "o"))
return np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g * g)], axis=1)
