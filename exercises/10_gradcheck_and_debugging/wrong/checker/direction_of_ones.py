    with minidl.no_grad():
        direction = np.ones(fn(*[minidl.tensor(a) for a in arrays]).shape)

    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    (fn(*tensors) * minidl.tensor(direction)).sum().backward()
    analytic = [np.zeros(a.shape) if t.grad is None else t.grad.array for a, t in zip(arrays, tensors)]

    def projected(*current):
        with minidl.no_grad():
            return float((fn(*[minidl.tensor(a) for a in current]).array * direction).sum())

    numeric = numerical_gradient(projected, arrays, eps)
    mismatches = []
    for index, (a, n) in enumerate(zip(analytic, numeric)):
        error = np.abs(a - n)
        if np.any(error > atol + rtol * np.abs(n)):
            mismatches.append(Mismatch(index, float(error.max())))
    return mismatches
