total = state.get("sum", np.zeros_like(param)) + grad * grad
param -= group["lr"] * grad / (np.sqrt(total) + group["eps"])
