        row_sums = x.sum(axis=1, keepdims=True)
        return grad / row_sums
