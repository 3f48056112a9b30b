"""minidl.nn: layers and models built from Modules, as in PyTorch.

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = nn.CrossEntropyLoss()(model(x), y)

Modules register their Parameters, buffers and children; see module.py for the base
class, init.py for the initializers and the lectures' advice on them, fusion.py for
`nn.fuse(model)` (each layer and its activation as one op, when you ask for it).
The lectures' wider toolbox: attention and an encoder-decoder (attention.py, seq2seq.py, decoding in
decode.py), large output layers and word2vec (large_output.py, word2vec.py), ensembles and
distillation (distillation.py), variable-length batches (utils.rnn).
"""

from minidl.nn import decode, functional, init, utils, word2vec
from minidl.nn.activation import GELU, LeakyReLU, LogSoftmax, Maxout, ReLU, Sigmoid, Softmax, Tanh
from minidl.nn.attention import Attention
from minidl.nn.container import ModuleList, Sequential
from minidl.nn.conv import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    GlobalAvgPool,
    MaxPool1d,
    MaxPool2d,
)
from minidl.nn.distillation import DistillationLoss, Ensemble
from minidl.nn.dropout import Dropout
from minidl.nn.fusion import FusedConv2d, FusedLinear, fuse
from minidl.nn.large_output import HierarchicalSoftmax, HuffmanTree, NegativeSampling, SampledSoftmax
from minidl.nn.linear import Flatten, Identity, Linear
from minidl.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, MSELoss, NLLLoss
from minidl.nn.module import Module, RemovableHandle, module_stack, named_module_stack
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from minidl.nn.parameter import Parameter
from minidl.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minidl.nn.seq2seq import Seq2Seq
from minidl.nn.sparse import Embedding
from minidl.nn.word2vec import Word2Vec

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
    "Conv1d",
    "Conv2d",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "GlobalAvgPool",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Softmax",
    "LogSoftmax",
    "GELU",
    "Maxout",
    "Dropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Embedding",
    "RNNCell",
    "RNN",
    "LSTMCell",
    "LSTM",
    "GRUCell",
    "GRU",
    "Attention",
    "Seq2Seq",
    "HuffmanTree",
    "HierarchicalSoftmax",
    "SampledSoftmax",
    "NegativeSampling",
    "Word2Vec",
    "Ensemble",
    "DistillationLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
    "FusedLinear",
    "FusedConv2d",
    "fuse",
    "init",
    "functional",
    "utils",
    "decode",
    "word2vec",
]
