if "sum" not in state:
    state["sum"] = np.zeros_like(param)
total = state["sum"]
total += grad * grad
param -= group["lr"] * grad / (total + group["eps"])
