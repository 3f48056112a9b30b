    with debug.trace() as recorded:
        loss_fn(*inputs).backward()
    broken = set()
    for record in recorded.records:
        cls = type(record.function)
        if record.op == "leaf" or cls not in suspects or cls.__name__ in broken:
            continue
        local = [minidl.tensor(np.array(t.array, dtype=np.float64)) for t in record.inputs]
        local[0].requires_grad = True  # the first input is the one that matters
        if not debug.gradcheck(lambda *ts, cls=cls: cls.apply(*ts), local, raise_exception=False):
            broken.add(cls.__name__)
    return sorted(broken)
