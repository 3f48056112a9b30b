    # every gradient misses the N - 1 others' updates
    return [0] * (workers - 1) + [updates] if updates else []
