        row_sums = x.sum(axis=1, keepdims=True)
        y = x / row_sums
        return (grad - (grad * y).sum(axis=0, keepdims=True)) / row_sums
