    rng = np.random.default_rng(0)
    broken = set()
    for cls in suspects:
        arity = cls.forward.__code__.co_argcount - 1
        local = [minidl.tensor(rng.uniform(0.5, 2.0, (3, 4)), requires_grad=True) for _ in range(arity)]
        if not debug.gradcheck(lambda *ts, cls=cls: cls.apply(*ts), local, raise_exception=False):
            broken.add(cls.__name__)
    return sorted(broken)
