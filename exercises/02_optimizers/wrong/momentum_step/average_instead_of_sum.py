if "velocity" not in state:
    state["velocity"] = np.zeros_like(param)
velocity = state["velocity"]
velocity *= group["momentum"]
velocity += (1 - group["momentum"]) * grad
param -= group["lr"] * velocity
