param -= group["lr"] * grad
