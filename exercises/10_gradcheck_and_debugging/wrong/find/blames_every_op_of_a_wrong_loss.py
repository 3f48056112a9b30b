    with debug.trace() as recorded:
        loss_fn(*inputs).backward()
    local = [minidl.tensor(np.array(t.array, dtype=np.float64), requires_grad=t.requires_grad) for t in inputs]
    if debug.gradcheck(loss_fn, local, raise_exception=False):
        return []
    used = [type(r.function) for r in recorded.records if r.op != "leaf"]
    return sorted({cls.__name__ for cls in used if cls in suspects})
