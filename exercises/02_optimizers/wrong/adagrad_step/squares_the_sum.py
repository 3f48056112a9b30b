if "sum" not in state:
    state["sum"] = np.zeros_like(param)
total = state["sum"]
total += grad
param -= group["lr"] * grad / (np.sqrt(total * total) + group["eps"])
