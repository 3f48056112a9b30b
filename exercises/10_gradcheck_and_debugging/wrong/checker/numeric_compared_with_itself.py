    rng = np.random.default_rng(seed)
    with minidl.no_grad():
        direction = rng.standard_normal(fn(*[minidl.tensor(a) for a in arrays]).shape)

    def projected(*current):
        with minidl.no_grad():
            return float((fn(*[minidl.tensor(a) for a in current]).array * direction).sum())

    numeric = numerical_gradient(projected, arrays, eps)
    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    (fn(*tensors) * minidl.tensor(direction)).sum().backward()
    mismatches = []
    for index, n in enumerate(numeric):
        # the analytic side was meant here, but the numeric one was compared with a second estimate
        again = numerical_gradient(projected, arrays, eps)[index]
        error = np.abs(again - n)
        if np.any(error > atol + rtol * np.abs(n)):
            mismatches.append(Mismatch(index, float(error.max())))
    return mismatches
