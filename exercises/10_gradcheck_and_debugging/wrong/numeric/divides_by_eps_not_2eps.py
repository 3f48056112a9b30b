    gradients = []
    for x in arrays:
        gradient = np.zeros(x.shape, dtype=np.float64)
        for index in np.ndindex(x.shape):
            original = x[index]
            x[index] = original + eps
            plus = float(f(*arrays))
            x[index] = original - eps
            minus = float(f(*arrays))
            x[index] = original
            gradient[index] = (plus - minus) / eps
        gradients.append(gradient)
    return gradients
