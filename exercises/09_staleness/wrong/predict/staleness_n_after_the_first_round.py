    first_round = min(workers, updates)
    histogram = [1] * first_round + [0] * (workers + 1 - first_round)
    histogram[workers] += updates - first_round
    while histogram and histogram[-1] == 0:
        histogram.pop()
    return histogram
