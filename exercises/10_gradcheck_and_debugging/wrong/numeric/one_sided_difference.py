    gradients = []
    for x in arrays:
        gradient = np.zeros(x.shape, dtype=np.float64)
        base = float(f(*arrays))
        for index in np.ndindex(x.shape):
            original = x[index]
            x[index] = original + eps
            plus = float(f(*arrays))
            x[index] = original
            gradient[index] = (plus - base) / eps
        gradients.append(gradient)
    return gradients
