velocity = group["momentum"] * state.get("velocity", np.zeros_like(param)) + grad
param -= group["lr"] * velocity
