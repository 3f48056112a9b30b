i, f, g, o, c, tanh_c = (cache[k] for k in ("i", "f", "g", "o", "c", "tanh_c"))
dc = dc_next + dh_next * o * (1 - np.tanh(c) ** 2)
return dc * g, dc * c, dc * i, dh_next * tanh_c, dc * f
