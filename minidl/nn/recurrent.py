"""Recurrent layers: RNN, LSTM and GRU cells, and the multi-layer loops the lectures write out.

A recurrent network ties its weights across time the way a CNN ties them across space;
backprop through the unrolled loop "just works": the gradients of every step add up.
Plain RNNs "mostly don't work" beyond a few steps (vanishing / exploding gradients).
The LSTM fixes that with a memory cell behind sigmoid [0, 1] gates, a differentiable
version of WRITE / READ / FORGET, so information can be kept for long or dropped quickly.
The GRU (Cho et al., 2014) keeps the gating with two gates and no separate memory cell.

The multi-layer modules also run bidirectionally (a second stack reads the sequence backwards;
Bahdanau et al.'s encoder) and on variable-length batches (a PackedSequence from
nn.utils.rnn.pack_padded_sequence: each sequence stops at its own length).

Parameter names are PyTorch's: layer d's matrices are weight_ih_l<d>, weight_hh_l<d>, bias_ih_l<d>,
bias_hh_l<d> (with _reverse for the backward direction), the same gates in the same order, so state
dicts copy between the two name by name. self.cells[d] (self.cells_reverse[d]) is the cell using them.
"""

import math

import numpy as np

from minidl import ops
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter, check_sizes
from minidl.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from minidl.tensor import Tensor


class _CellBase(Module):
    """Shared parameters of RNNCell, LSTMCell and GRUCell: W_ih (gates·H, in), W_hh (gates·H, H), b_ih, b_hh.

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
        shape = (x.shape[0], self.hidden_size)
        return Tensor._wrap(np.zeros(shape, dtype=self.weight_ih.dtype), device=x.device)  # where x is

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


class GRUCell(_CellBase):
    """One GRU step (Cho et al., 2014): (x, h) -> h'. Gates in PyTorch's order r, z, n:

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)          reset gate:  how much of h the candidate sees
        z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)          update gate: how much of h to keep
        n = tanh(x W_inᵀ + b_in + r * (h W_hnᵀ + b_hn))  candidate
        h' = (1 - z) * n + z * h

    An LSTM without the separate memory cell: z does the LSTM's FORGET and WRITE at once
    (keep z of the old state, write 1 - z of the new). weight_ih stacks W_ir, W_iz, W_in (3H, in).
    """

    gates = 3

    def forward(self, x, h=None):
        h = self._zeros(x) if h is None else h
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"GRUCell: expected input (N, {self.input_size}), got shape {x.shape}")
        i_r, i_z, i_n = ops.split(ops.linear(x, self.weight_ih, self.bias_ih), self.hidden_size, axis=1)
        h_r, h_z, h_n = ops.split(ops.linear(h, self.weight_hh, self.bias_hh), self.hidden_size, axis=1)
        r = ops.sigmoid(i_r + h_r)
        z = ops.sigmoid(i_z + h_z)
        n = ops.tanh(i_n + r * h_n)
        return n + z * (h - n)  # (1 - z) * n + z * h, with one multiplication less


class _Recurrent(Module):
    """A stack of cells run over a sequence: the lectures' deep loop (see LSTM).

    Subclasses say what a cell's state is: `_step(cell, x, state) -> (h, state)` runs one cell,
    `_split_state` / `_join_state` convert between the user's (h0[, c0]) tensors and per-cell states.
    """

    cell_class = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, **cell_kw):  # fmt: skip
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
        self.bidirectional = bool(bidirectional)
        directions = 2 if bidirectional else 1
        # Layer d > 0 reads the layer below: both directions' outputs side by side when bidirectional.
        sizes = [input_size if d == 0 else directions * hidden_size for d in range(num_layers)]
        # Plain lists: the cells' parameters are registered on this layer, under PyTorch's names (below).
        self.cells = [self.cell_class(size, hidden_size, bias, **cell_kw) for size in sizes]
        if bidirectional:
            self.cells_reverse = [self.cell_class(size, hidden_size, bias, **cell_kw) for size in sizes]
        self._register_cell_parameters()

    def _register_cell_parameters(self):
        """Register each cell's parameters on this layer under PyTorch's names and in its order: cell d's
        weight_ih is weight_ih_l<d> (bias_hh_l<d>, ...), then the backward cell's weight_ih_l<d>_reverse...
        The cell and the layer share the Parameter objects, so state dicts move between minidl and
        PyTorch name by name, and the cells still compute each step (the lecture's loop)."""
        for d, cell in enumerate(self.cells):
            stacks = [(cell, "")] + ([(self.cells_reverse[d], "_reverse")] if self.bidirectional else [])
            for layer_cell, suffix in stacks:
                for name, parameter in layer_cell._parameters.items():
                    self.register_parameter(f"{name}_l{d}{suffix}", parameter)

    def reset_parameters(self):
        for cell in self.cells + getattr(self, "cells_reverse", []):
            cell.reset_parameters()

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

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

    def forward(self, x, state=None):
        """input (T, N, in) (or (N, T, in) with batch_first), or a PackedSequence; optional initial state
        -> (output, final state). See the subclasses for the state's form."""
        packed = x if isinstance(x, PackedSequence) else None
        if packed is not None:
            x, lengths = pad_packed_sequence(packed)  # time-major, the batch in its original order
            mask = np.arange(x.shape[0])[:, None] < lengths.array[None, :]  # (T, N): step t is real for sequence n
        else:
            x, mask = self._time_major(x), None
        states = self._split_state(state, x)
        if mask is not None:  # a sequence that is over keeps its state: start from explicit zeros
            states = [self._zero_state(x) if s is None else s for s in states]
        if self.bidirectional:
            output, states = self._layer_by_layer(x, states, mask)
        else:
            output, states = self._deep_loop(x, states, mask)
        final = self._join_state(states)
        if packed is not None:
            return pack_padded_sequence(output, lengths, enforce_sorted=packed.sorted_indices is None), final
        return (output.transpose(0, 1) if self.batch_first else output), final

    def _deep_loop(self, x, states, mask):
        """One direction, the lecture's loop: for each time step i, for each layer d, one cell step.

        mask (T, N) or None: where mask[i] is False the sequence has ended; its state stays as it
        was (so the final state is the one at its own last step) and its output is 0.
        """
        cells = list(self.cells)  # once, not a ModuleList lookup per step
        outputs = []
        for i in range(x.shape[0]):
            below = x[i]  # what layer d reads: the input, then the h of the layer below
            for d in range(self.num_layers):
                h, new_state = self._step(cells[d], self._layer_input(below, d), states[d])
                if mask is not None:
                    h, new_state = self._masked(mask[i], h, new_state, states[d])
                states[d] = new_state
                below = h
            outputs.append(below)
        return ops.stack(outputs, axis=0), states

    def _layer_by_layer(self, x, states, mask):
        """Both directions: each layer reads the whole sequence forwards (cells) and backwards
        (cells_reverse), and the next layer reads both outputs side by side."""
        layer_input = x
        new_states = [None] * len(states)
        for d in range(self.num_layers):
            if d > 0:
                layer_input = self._layer_input(layer_input, d)
            both = []
            for direction, cells in enumerate((self.cells, self.cells_reverse)):
                index = self.num_directions * d + direction  # PyTorch's order of h0/h_n: layer-major
                steps = range(x.shape[0]) if direction == 0 else range(x.shape[0] - 1, -1, -1)
                state, outputs = states[index], [None] * x.shape[0]
                for i in steps:
                    h, new_state = self._step(cells[d], layer_input[i], state)
                    if mask is not None:
                        h, new_state = self._masked(mask[i], h, new_state, state)
                    state, outputs[i] = new_state, h
                new_states[index] = state
                both.append(ops.stack(outputs, axis=0))
            layer_input = ops.concat(both, axis=2)
        return layer_input, new_states

    def _masked(self, keep, h, new_state, old_state):
        """(output, state) for a step some sequences no longer take: their output 0, their state unchanged."""
        keep = keep[:, None]
        state = _map_state(lambda new, old: ops.where(keep, new, old), new_state, old_state)
        return ops.where(keep, h, 0.0), state

    def _zero_state(self, x):
        zeros = Tensor(np.zeros((x.shape[1], self.hidden_size), dtype=self.cells[0].weight_ih.dtype), device=x.device)
        return self._state_like(zeros)

    def _check_state(self, tensor, x, what):
        expected = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if tensor.shape != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expected}, got {tensor.shape}")

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


def _map_state(function, *states):
    """Apply function to a state that is one tensor (RNN, GRU) or a tuple of them (LSTM's (h, c))."""
    if isinstance(states[0], tuple):
        return tuple(function(*parts) for parts in zip(*states))
    return function(*states)


class _HiddenStateOnly(_Recurrent):
    """RNN and GRU: a cell's state is its output h; the user's state is h0 / h_n (layers·directions, N, H)."""

    def _step(self, cell, x, h):
        h = cell(x, h)
        return h, h

    def _state_like(self, zeros):
        return zeros

    def _split_state(self, h0, x):
        if h0 is None:
            return [None] * (self.num_layers * self.num_directions)
        self._check_state(h0, x, "h0")
        return [h0[k] for k in range(h0.shape[0])]

    def _join_state(self, states):
        return ops.stack(states, axis=0)


class RNN(_HiddenStateOnly):
    """Elman RNN: h_t[d] = tanh(input W_ihᵀ + b_ih + h_{t-1}[d] W_hhᵀ + b_hh) for each layer d.

    input (T, N, in) (or (N, T, in) with batch_first, or a PackedSequence) and optional h0
    (num_layers·directions, N, H) -> output (T, N, directions·H) (the top layer's h at every step)
    and h_n (num_layers·directions, N, H).
    """

    cell_class = RNNCell

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False):  # fmt: skip
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         nonlinearity=nonlinearity)  # fmt: skip


class GRU(_HiddenStateOnly):
    """A multi-layer GRU, optionally bidirectional: the GRUCell step in the deep loop of LSTM.

    input (T, N, in) (or (N, T, in) with batch_first, or a PackedSequence) and optional h0
    (num_layers·directions, N, H) -> output (T, N, directions·H) and h_n (num_layers·directions, N, H),
    as torch.nn.GRU. Parameters have PyTorch's names, weight_ih_l<d> etc. (the r, z, n gates
    stacked the same way), *_l<d>_reverse for the backward direction.
    """

    cell_class = GRUCell


class LSTM(_Recurrent):
    """A deep LSTM, written as the lecture's loop over time i and depth d (_Recurrent._deep_loop):

        for i in range(T):
            for d in range(num_layers):
                input = x[i] if d == 0 else m[d-1]
                m[d], c[d] = LSTMCell(input, mprev[d], cprev[d])
                mprev[d] = m[d]; cprev[d] = c[d]

    (here h is the lecture's m, and keeping m[d], c[d] in a list makes "mprev = m" implicit).
    input (T, N, in) (or (N, T, in) with batch_first, or a PackedSequence), optional (h0, c0) each
    (num_layers·directions, N, H) -> output (T, N, directions·H), the top layer's h at every step, and
    (h_n, c_n) each (num_layers·directions, N, H). bidirectional=True runs layer by layer instead, each
    layer forwards and backwards. Parameters have PyTorch's names and layout (weight_ih_l<d>: layer d's
    W_ih, gates in the order i, f, g, o; weight_ih_l<d>_reverse for the backward direction), so a state
    dict copies over name by name; self.cells[d] is layer d's cell.
    """

    cell_class = LSTMCell

    def _step(self, cell, x, state):
        h, c = cell(x, state)
        return h, (h, c)

    def _state_like(self, zeros):
        return (zeros, zeros)

    def _split_state(self, state, x):
        if state is None:
            return [None] * (self.num_layers * self.num_directions)
        h0, c0 = state
        self._check_state(h0, x, "h0")
        self._check_state(c0, x, "c0")
        return [(h0[k], c0[k]) for k in range(h0.shape[0])]

    def _join_state(self, states):
        return ops.stack([h for h, _ in states], axis=0), ops.stack([c for _, c in states], axis=0)
