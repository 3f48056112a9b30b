"""Containers: Sequential (run children in order) and ModuleList (hold a list of children).

Both register their children under the names "0", "1", ... so state_dict keys
look like "0.weight", as in PyTorch.
"""

from collections import OrderedDict

from minidl.nn.module import Module


class _ModuleSequence(Module):
    """What both containers share: children in order, appended, counted, iterated and indexed."""

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: can only hold Modules, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._from_items(list(self._modules.items())[index])
        return list(self._modules.values())[index]


class Sequential(_ModuleSequence):
    """Chain modules: Sequential(a, b, c)(x) == c(b(a(x))). Also accepts an OrderedDict of named modules."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, not a Module")
                self.add_module(str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    @staticmethod
    def _from_items(items):
        return Sequential(OrderedDict(items))  # a slice keeps its children's names


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters belong to the owner (a plain Python list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    @staticmethod
    def _from_items(items):
        return ModuleList(module for _, module in items)  # a slice renumbers from 0, like a list

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over it and call its modules")
