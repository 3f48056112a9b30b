    # everyone starts from version 0, so (wrongly) the whole first round counts as fresh
    first_round = min(workers, updates)
    histogram = [first_round] + [0] * (workers - 1)
    histogram[workers - 1] += updates - first_round
    while histogram and histogram[-1] == 0:
        histogram.pop()
    return histogram
