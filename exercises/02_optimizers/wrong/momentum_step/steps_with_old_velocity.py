if "velocity" not in state:
    state["velocity"] = np.zeros_like(param)
velocity = state["velocity"]
param -= group["lr"] * velocity
velocity *= group["momentum"]
velocity += grad
