a = cache["a"]
hidden = a.shape[1] // 4
ai, af, ag, ao = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
return np.concatenate([di * ai * (1 - ai), df * af * (1 - af), dg * (1 - ag * ag), do * ao * (1 - ao)], axis=1)
