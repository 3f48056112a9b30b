"""minidl.utils.data: datasets and the DataLoader where PyTorch keeps them (torch.utils.data).

    from minidl.utils.data import DataLoader, TensorDataset, random_split

The classes are minidl.data's (which also has the built-in data sets); this module only
gives them PyTorch's address.
"""

from minidl.data.dataset import Dataset, Subset, TensorDataset, random_split
from minidl.data.loader import DataLoader, default_collate

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate"]
