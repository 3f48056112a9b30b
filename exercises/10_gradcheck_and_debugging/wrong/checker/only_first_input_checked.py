    rng = np.random.default_rng(seed)
    with minidl.no_grad():
        direction = rng.standard_normal(fn(*[minidl.tensor(a) for a in arrays]).shape)

    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    (fn(*tensors) * minidl.tensor(direction)).sum().backward()

    def projected(*current):
        with minidl.no_grad():
            return float((fn(*[minidl.tensor(a) for a in current]).array * direction).sum())

    numeric = numerical_gradient(projected, arrays, eps)
    error = np.abs(tensors[0].grad.array - numeric[0])
    if np.any(error > atol + rtol * np.abs(numeric[0])):
        return [Mismatch(0, float(error.max()))]
    return []
