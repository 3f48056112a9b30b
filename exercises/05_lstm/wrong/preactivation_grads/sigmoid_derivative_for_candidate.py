i, f, g, o = (cache[k] for k in ("i", "f", "g", "o"))
return np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * g * (1 - g), do * o * (1 - o)], axis=1)
