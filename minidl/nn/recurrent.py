"""Recurrent layers: RNN and LSTM cells, and the multi-layer loops the lectures write out.

A recurrent network ties its weights across time the way a CNN ties them across space;
backprop through the unrolled loop "just works": the gradients of every step add up.
Plain RNNs "mostly don't work" beyond a few steps (vanishing / exploding gradients).
The LSTM fixes that with a memory cell behind sigmoid [0, 1] gates, a differentiable
version of WRITE / READ / FORGET, so information can be kept for long or dropped quickly.
"""

import math

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter, check_sizes
from minidl.tensor import Tensor


class _CellBase(Module):
    """Shared parameters of RNNCell and LSTMCell: W_ih (gates·H, in), W_hh (gates·H, H), b_ih, b_hh.

    Names and shapes are PyTorch's, so weights copy over; all start ~ U(-1/sqrt(H), 1/sqrt(H)).
    """

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = Parameter.empty((rows, input_size), dtype=dtype)
        self.weight_hh = Parameter.empty((rows, hidden_size), dtype=dtype)
        self.bias_ih = Parameter.empty(rows, dtype=dtype) if bias else None
        self.bias_hh = Parameter.empty(rows, dtype=dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _gates(self, x, h):
        """x W_ihᵀ + b_ih + h W_hhᵀ + b_hh: every gate's pre-activation in one (N, gates·H) matrix."""
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input (N, {self.input_size}), got shape {x.shape}")
        return ops.linear(x, self.weight_ih, self.bias_ih) + ops.linear(h, self.weight_hh, self.bias_hh)

    def _zeros(self, x):
        return Tensor._wrap(np.zeros((x.shape[0], self.hidden_size), dtype=self.weight_ih.dtype))

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_CellBase):
    """h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (or relu with nonlinearity="relu")."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, x, h=None):
        h = self._zeros(x) if h is None else h
        pre = self._gates(x, h)
        return ops.tanh(pre) if self.nonlinearity == "tanh" else ops.relu(pre)


class LSTMCell(_CellBase):
    """One LSTM step: (x, (h, c)) -> (h', c'). Gates in PyTorch's order i, f, g, o:

        i = σ(·)        input gate:   WRITE?  how much of the candidate to store
        f = σ(·)        forget gate:  FORGET? how much of the old memory to keep
        g = tanh(·)     candidate value to write
        o = σ(·)        output gate:  READ?   how much of the memory to show
        c' = f * c + i * g
        h' = o * tanh(c')

    where each (·) is that gate's slice of x W_ihᵀ + b_ih + h W_hhᵀ + b_hh.
    The lecture calls h the output m (m, c = LSTMCell(x, mprev, cprev)).
    """

    gates = 4

    def forward(self, x, state=None):
        h, c = (self._zeros(x), self._zeros(x)) if state is None else state
        i, f, g, o = ops.split(self._gates(x, h), self.hidden_size, axis=1)
        i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
        c_next = f * c + i * g
        h_next = o * ops.tanh(c_next)
        return h_next, c_next


class _Recurrent(Module):
    """A stack of cells run over a sequence: the lectures' deep loop (see LSTM)."""

    cell_class = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0, **cell_kw):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"{type(self).__name__}: num_layers must be >= 1, got {num_layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.dropout = dropout
        self.cells = [  # a plain list: the cells' parameters are registered on this layer, below
            self.cell_class(input_size if d == 0 else hidden_size, hidden_size, bias, **cell_kw)
            for d in range(num_layers)
        ]
        self._register_cell_parameters(self.cells)

    def _register_cell_parameters(self, cells, suffix=""):
        """Register each cell's parameters on this layer under PyTorch's names: cell d's weight_ih is
        weight_ih_l<d> (bias_hh_l<d>, ...; suffix "_reverse" for the backward cells of a bidirectional
        layer). The cell and the layer share the Parameter objects, so state dicts move between minidl
        and PyTorch name by name, and the cells still compute each step (the lecture's loop)."""
        for d, cell in enumerate(cells):
            for name, parameter in cell._parameters.items():
                self.register_parameter(f"{name}_l{d}{suffix}", parameter)

    def reset_parameters(self):
        for cell in self.cells:
            cell.reset_parameters()

    def _time_major(self, x):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(N, T, input_size)" if self.batch_first else "(T, N, input_size)"
            raise ValueError(
                f"{type(self).__name__}: expected input {layout} with input_size={self.input_size}, got {x.shape}"
            )
        return x.transpose(0, 1) if self.batch_first else x

    def _layer_input(self, value, d):
        """Dropout between layers (not after the last), as PyTorch's dropout argument."""
        if d > 0 and self.dropout:
            return ops.dropout(value, self.dropout, self.training)
        return value

    def _output(self, outputs):
        out = ops.stack(outputs, axis=0)  # (T, N, H)
        return out.transpose(0, 1) if self.batch_first else out

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text


class RNN(_Recurrent):
    """Elman RNN: h_t[d] = tanh(input W_ihᵀ + b_ih + h_{t-1}[d] W_hhᵀ + b_hh) for each layer d.

    input (T, N, in) (or (N, T, in) with batch_first) and optional h0 (num_layers, N, H)
    -> output (T, N, H) (the top layer's h at every step) and h_n (num_layers, N, H).
    """

    cell_class = RNNCell

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0):  # fmt: skip
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, nonlinearity=nonlinearity)

    def forward(self, x, h0=None):
        x = self._time_major(x)
        cells = list(self.cells)  # once, not a ModuleList lookup per step
        h = [None if h0 is None else h0[d] for d in range(self.num_layers)]
        outputs = []
        for t in range(x.shape[0]):
            for d in range(self.num_layers):
                layer_input = x[t] if d == 0 else self._layer_input(h[d - 1], d)
                h[d] = cells[d](layer_input, h[d])
            outputs.append(h[-1])
        return self._output(outputs), ops.stack(h, axis=0)


class LSTM(_Recurrent):
    """A deep LSTM, written as the lecture's loop over time i and depth d:

        for i in range(T):
            for d in range(num_layers):
                input = x[i] if d == 0 else m[d-1]
                m[d], c[d] = LSTMCell(input, mprev[d], cprev[d])
                mprev[d] = m[d]; cprev[d] = c[d]

    (here h is the lecture's m, and keeping m[d], c[d] in a list makes "mprev = m" implicit).
    input (T, N, in) (or (N, T, in) with batch_first), optional (h0, c0) each (num_layers, N, H)
    -> output (T, N, H), the top layer's h at every step, and (h_n, c_n) each (num_layers, N, H).
    Parameters have PyTorch's names and layout (weight_ih_l<d>: layer d's W_ih, gates in the
    order i, f, g, o), so a state dict copies over name by name; self.cells[d] is layer d's cell.
    """

    cell_class = LSTMCell

    def forward(self, x, state=None):
        x = self._time_major(x)
        cells = list(self.cells)  # once, not a ModuleList lookup per step
        if state is None:
            m = [None] * self.num_layers
            c = [None] * self.num_layers
        else:
            h0, c0 = state
            m = [h0[d] for d in range(self.num_layers)]
            c = [c0[d] for d in range(self.num_layers)]
        outputs = []
        for i in range(x.shape[0]):
            for d in range(self.num_layers):
                layer_input = x[i] if d == 0 else self._layer_input(m[d - 1], d)
                prev = None if m[d] is None else (m[d], c[d])
                m[d], c[d] = cells[d](layer_input, prev)
            outputs.append(m[-1])
        return self._output(outputs), (ops.stack(m, axis=0), ops.stack(c, axis=0))
