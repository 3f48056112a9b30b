"""minidl.nn: layers and models built from Modules, as in PyTorch.

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = nn.CrossEntropyLoss()(model(x), y)

Modules register their Parameters, buffers and children; see module.py for the base
class, init.py for the initializers and the lectures' advice on them, fusion.py for
`nn.fuse(model)` (each layer and its activation as one op, when you ask for it).
"""

from minidl.nn import functional, init
from minidl.nn.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from minidl.nn.container import ModuleList, Sequential
from minidl.nn.conv import AvgPool2d, Conv2d, MaxPool2d
from minidl.nn.dropout import Dropout
from minidl.nn.fusion import FusedConv2d, FusedLinear, fuse
from minidl.nn.linear import Flatten, Identity, Linear
from minidl.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from minidl.nn.module import Module, RemovableHandle, module_stack, named_module_stack
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d
from minidl.nn.parameter import Parameter
from minidl.nn.recurrent import LSTM, RNN, LSTMCell, RNNCell
from minidl.nn.sparse import Embedding

__all__ = [
    "Module",
    "Parameter",
    "RemovableHandle",
    "module_stack",
    "named_module_stack",
    "Sequential",
    "ModuleList",
    "Linear",
    "Identity",
    "Flatten",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Softmax",
    "LogSoftmax",
    "Dropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "Embedding",
    "RNNCell",
    "RNN",
    "LSTMCell",
    "LSTM",
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "BCEWithLogitsLoss",
    "FusedLinear",
    "FusedConv2d",
    "fuse",
    "init",
    "functional",
]
