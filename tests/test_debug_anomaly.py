"""Anomaly mode and explain(): naming the op, and the line of user code, behind a NaN or Inf."""

import pathlib

import numpy as np
import pytest

import minidl
from minidl import autograd, nn
from minidl.debug import AnomalyError, detect_anomaly, explain, record_modules

THIS_FILE = str(pathlib.Path(__file__).resolve())


def line_of(marker):
    """The line number in this file of the line that ends with `marker` (so tests need no magic numbers)."""
    lines = pathlib.Path(THIS_FILE).read_text().splitlines()
    (number,) = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(marker) and "line_of" not in line]
    return number


@pytest.fixture(autouse=True)
def observers_are_cleaned_up():
    forward, backward = list(autograd.forward_observers), list(autograd.backward_observers)
    yield
    assert autograd.forward_observers == forward and autograd.backward_observers == backward


class LogModel(nn.Module):
    """A tiny model that takes the log of its activations: fine until an activation is 0."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x).relu().log()  # anomaly: log in forward


def test_log_of_zero_in_a_model_names_log_and_the_line_that_called_it():
    model = LogModel()
    with minidl.no_grad():
        model.fc.weight.fill_(0.0)
        model.fc.bias.copy_(minidl.tensor([1.0, -1.0]))  # relu(-1) = 0, and log(0) = -inf
    with detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(AnomalyError) as info:
        model(minidl.ones(3, 2))
    message = str(info.value)
    assert "forward of log (Log)" in message
    assert f"{THIS_FILE}:{line_of('# anomaly: log in forward')}" in message
    assert "-inf" in message and "self.fc(x).relu().log()" in message
    assert "inside module LogModel" in message
    assert info.value.op == "log" and info.value.phase == "forward"
    assert info.value.site.lineno == line_of("# anomaly: log in forward")


def test_log_of_zero_called_directly_in_a_test_names_the_test_line():
    x = minidl.tensor([1.0, 0.0], requires_grad=True)
    with detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(AnomalyError) as info:
        minidl.log(x * 1)  # anomaly: direct log
    assert f"{THIS_FILE}:{line_of('# anomaly: direct log')}" in str(info.value)
    assert "log" in str(info.value)


def test_a_nan_born_in_backward_names_the_op_whose_backward_made_it_and_where_it_was_created():
    x = minidl.tensor([4.0, 0.0], requires_grad=True)
    with detect_anomaly():
        y = (x * 1).sqrt()  # anomaly: sqrt created here
        loss = y.sum()
        with np.errstate(divide="ignore"), pytest.raises(AnomalyError) as info:
            loss.backward()  # d sqrt(x)/dx = 1/(2 sqrt(x)) is inf at 0
    error = info.value
    assert error.phase == "backward" and error.op == "sqrt" and error.input_index == 0
    assert "backward of sqrt (Sqrt)" in str(error)
    assert f"{THIS_FILE}:{line_of('# anomaly: sqrt created here')}" in str(error)
    assert "dy/dx = 1 / (2 sqrt(x))" in str(error)  # the formula, to compare with by hand


def test_backward_anomaly_of_an_op_created_outside_the_block_says_the_site_is_unknown():
    x = minidl.tensor([0.0], requires_grad=True)
    y = (x * 1).sqrt().sum()
    with detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(AnomalyError, match="creation site is unknown"):
        y.backward()


def test_a_nan_already_in_an_input_is_reported_at_the_first_op_that_sees_it():
    x = minidl.tensor([np.nan, 1.0], requires_grad=True)
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"input\(s\) \[0\] already contained NaN"):
        x * 2


def test_check_forward_false_allows_deliberate_infinities():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with detect_anomaly(check_forward=False):
        masked = minidl.where(minidl.tensor([True, False]), x, -np.inf)  # masking before a softmax
        masked.softmax().sum().backward()
    assert np.isfinite(x.grad.array).all()


def test_finite_models_run_unchanged_under_anomaly_mode():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = minidl.randn(5, 3)
    with detect_anomaly():
        model(x).sum().backward()
    reference = [p.grad.array.copy() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for got, expected in zip(reference, [p.grad.array for p in model.parameters()]):
        np.testing.assert_array_equal(got, expected)


def test_anomaly_error_is_a_runtime_error_like_torch():
    assert issubclass(AnomalyError, RuntimeError)


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------
def test_explain_prints_the_chain_of_ops_as_an_indented_tree(capsys):
    rng = np.random.default_rng(0)
    X = minidl.Tensor(rng.standard_normal((4, 8)), name="X")
    Y = minidl.Tensor(rng.standard_normal((3, 8)), name="Y")
    W = minidl.Tensor(rng.standard_normal((3, 4)), requires_grad=True, name="W")
    B = minidl.Tensor(np.zeros((3, 1)), requires_grad=True, name="B")
    H0 = W @ X
    H0.name = "H0"
    loss = ((Y - (H0 + B)) ** 2).sum()
    text = explain(loss)
    assert capsys.readouterr().out.strip() == text
    assert text == "\n".join(
        [
            "Sum -> sum_0 ()",
            "└── PowScalar -> powscalar_0 (3, 8)",
            "    └── Sub -> sub_0 (3, 8)",
            "        ├── Y (3, 8)  constant",
            "        └── Add -> add_0 (3, 8)",
            "            ├── MatMul -> H0 (3, 8)",
            "            │   ├── W (3, 4)  leaf, requires grad",
            "            │   └── X (4, 8)  constant",
            "            └── B (3, 1)  leaf, requires grad",
        ]
    )


def test_explain_prints_a_shared_subgraph_once_and_can_stop_at_a_depth():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    d = x.exp()
    y = (d * d).sum()
    text = explain(y, print_it=False)
    assert text.count("Exp -> exp_0 (2,)") == 2 and text.count("(see above)") == 1
    assert text.count("leaf, requires grad") == 1
    shallow = explain(y, max_depth=1, print_it=False)
    assert "Exp" not in shallow and "└── ..." in shallow


def test_explain_shows_modules_and_creation_lines_when_recorded():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    with record_modules():
        out = model(minidl.randn(1, 2))  # explain: model called here
    text = explain(out, print_it=False)
    line = line_of("# explain: model called here")
    assert f"ReLU -> relu_0 (1, 3)  [Sequential.1]  @ test_debug_anomaly.py:{line}" in text
    assert "Sequential.0.weight (3, 2)  leaf, requires grad" in text


def test_explain_handles_a_ten_thousand_op_chain():
    x = minidl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    text = explain(y, max_depth=5, print_it=False)
    assert text.count("Mul ->") == 6 and text.count("└── ...") == 1  # levels 0..5, then a cut
