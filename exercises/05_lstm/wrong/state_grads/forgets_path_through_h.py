i, f, g, o, c, tanh_c = (cache[k] for k in ("i", "f", "g", "o", "c", "tanh_c"))
dc = dc_next
return dc * g, dc * c, dc * i, dh_next * tanh_c, dc * f
