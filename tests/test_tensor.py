"""Tensor basics: creation functions and their dtype defaults, seeded random numbers, the
*_like forms, conversions (item, numpy, detach, astype), requires_grad_, zero_, repr, and
comparisons (bool tensors that never carry gradient).
"""

import numpy as np
import pytest

import minidl

# ---------------------------------------------------------------------------
# dtype defaults
# ---------------------------------------------------------------------------


def test_python_floats_become_float32():
    assert minidl.tensor(1.5).dtype == np.float32
    assert minidl.tensor([1.0, 2.5]).dtype == np.float32
    assert minidl.tensor([[1, 2.5]]).dtype == np.float32  # a float anywhere makes it float


def test_python_ints_and_bools_keep_integer_and_bool_dtypes():
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.tensor([True, False]).dtype == np.bool_


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8, np.bool_])
def test_ndarrays_keep_their_dtype(dtype):
    array = np.arange(6).reshape(2, 3).astype(dtype)
    t = minidl.tensor(array)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.array, array)


def test_explicit_dtype_wins():
    assert minidl.tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert minidl.tensor(np.ones(2), dtype=minidl.float32).dtype == np.float32


def test_tensor_copies_its_data_but_from_numpy_shares_it():
    array = np.array([1.0, 2.0])
    copied, shared = minidl.tensor(array), minidl.from_numpy(array)
    array[0] = 50.0
    assert copied.array[0] == 1.0
    assert shared.array[0] == 50.0


def test_tensor_from_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError, match="tensor: cannot make a tensor from data of type str"):
        minidl.tensor("abc")


def test_only_float_tensors_can_require_grad():
    with pytest.raises(TypeError, match="only floating point tensors can require grad, got dtype int64"):
        minidl.tensor([1, 2], requires_grad=True)


# ---------------------------------------------------------------------------
# Creation functions
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: minidl.zeros(2, 3), np.zeros((2, 3))),
        (lambda: minidl.zeros((2, 3)), np.zeros((2, 3))),
        (lambda: minidl.ones(4), np.ones(4)),
        (lambda: minidl.ones(()), np.ones(())),
        (lambda: minidl.full((2, 2), 7.5), np.full((2, 2), 7.5)),
        (lambda: minidl.full(3, -1.0), np.full(3, -1.0)),
        (lambda: minidl.eye(3), np.eye(3)),
        (lambda: minidl.eye(2, 3), np.eye(2, 3)),
        (lambda: minidl.arange(0.0, 1.0, 0.25), np.arange(0.0, 1.0, 0.25)),
    ],
    ids=["zeros", "zeros-tuple", "ones", "ones-0d", "full", "full-int-shape", "eye", "eye-rect", "arange-float"],
)
def test_float_creation_functions_match_numpy_and_default_to_float32(make, expected):
    t = make()
    assert t.dtype == np.float32
    assert t.shape == expected.shape
    np.testing.assert_array_equal(t.array, expected)
    assert not t.requires_grad and t.is_leaf


def test_arange_with_integers_is_int64_like_range():
    t = minidl.arange(2, 11, 3)
    assert t.dtype == np.int64
    assert t.tolist() == list(range(2, 11, 3))
    assert minidl.arange(4).tolist() == [0, 1, 2, 3]


def test_creation_functions_accept_dtype_and_requires_grad():
    t = minidl.zeros(2, dtype=np.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad
    assert minidl.ones(2, dtype=np.int32).dtype == np.int32


def test_creation_errors_name_the_function_and_the_problem():
    with pytest.raises(ValueError, match=r"zeros: shape must be non-negative integers, got \(2, -1\)"):
        minidl.zeros(2, -1)
    with pytest.raises(ValueError, match="arange: step must not be zero"):
        minidl.arange(0, 5, 0)


def test_like_functions_take_shape_and_dtype_from_their_argument():
    base = minidl.tensor(np.ones((2, 3), dtype=np.float64))
    for like in (minidl.zeros_like, minidl.ones_like, minidl.empty_like, minidl.rand_like, minidl.randn_like):
        t = like(base)
        assert t.shape == (2, 3) and t.dtype == np.float64, like.__name__
    np.testing.assert_array_equal(minidl.zeros_like(base).array, 0)
    np.testing.assert_array_equal(minidl.ones_like(base).array, 1)
    np.testing.assert_array_equal(minidl.full_like(base, 4.0).array, 4)
    assert minidl.zeros_like(base, dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------------------
# Seeded random numbers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [minidl.rand, minidl.randn], ids=["rand", "randn"])
def test_same_seed_gives_the_same_numbers(make):
    minidl.manual_seed(123)
    first = make(3, 4).array.copy()
    minidl.manual_seed(123)
    second = make(3, 4).array
    minidl.manual_seed(124)
    other = make(3, 4).array
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32


def test_successive_draws_differ():
    minidl.manual_seed(0)
    assert not np.array_equal(minidl.randn(5).array, minidl.randn(5).array)


def test_seeding_also_fixes_the_like_forms_and_randint():
    base = minidl.zeros(2, 2)
    minidl.manual_seed(7)
    a = (minidl.rand_like(base).array.copy(), minidl.randn_like(base).array.copy(), minidl.randint(0, 10, (5,)).array)
    minidl.manual_seed(7)
    b = (minidl.rand_like(base).array, minidl.randn_like(base).array, minidl.randint(0, 10, (5,)).array)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_rand_is_uniform_in_unit_interval_and_randn_is_standard_normal():
    minidl.manual_seed(0)
    u = minidl.rand(20_000).array
    n = minidl.randn(20_000).array
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05


def test_randint_stays_in_range_with_integer_dtype():
    minidl.manual_seed(0)
    t = minidl.randint(3, 7, (1000,))
    assert t.dtype == np.int64
    assert set(np.unique(t.array)) == {3, 4, 5, 6}


def test_manual_seed_rejects_bad_seeds():
    with pytest.raises(ValueError, match="manual_seed: seed must be a non-negative integer"):
        minidl.manual_seed(-1)


# ---------------------------------------------------------------------------
# Conversions and basic facts
# ---------------------------------------------------------------------------
def test_shape_facts():
    t = minidl.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.dim() == 3
    assert t.numel() == 24 and len(t) == 2 and t.size() == (2, 3, 4) and t.size(1) == 3
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(minidl.tensor(1.0))


def test_iterating_yields_the_rows():
    t = minidl.tensor([[1.0, 2.0], [3.0, 4.0]])
    rows = list(t)
    assert len(rows) == 2
    np.testing.assert_array_equal(rows[1].array, [3.0, 4.0])


def test_item_returns_a_python_number_and_refuses_many_elements():
    assert minidl.tensor(2.5).item() == 2.5 and isinstance(minidl.tensor(2.5).item(), float)
    assert minidl.tensor([[7]]).item() == 7 and isinstance(minidl.tensor([[7]]).item(), int)
    with pytest.raises(ValueError, match=r"item: only one-element tensors .* got shape \(2,\)"):
        minidl.tensor([1.0, 2.0]).item()
    assert float(minidl.tensor([3.0])) == 3.0


def test_numpy_shares_memory():
    t = minidl.tensor([1.0, 2.0])
    t.numpy()[0] = 9.0
    assert t.array[0] == 9.0
    assert t.numpy() is t.array


def test_detach_shares_data_but_not_the_graph():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.array, y.array)


def test_requires_grad_underscore_switches_leaves_only():
    x = minidl.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = minidl.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="only change requires_grad of leaf tensors"):
        y.requires_grad_(False)
    with pytest.raises(TypeError, match="only floating point tensors can require grad"):
        minidl.tensor([1, 2]).requires_grad_()


def test_zero_clears_values_and_bumps_the_version():
    x = minidl.tensor([1.0, 2.0])
    assert x.zero_() is x
    np.testing.assert_array_equal(x.array, [0.0, 0.0])
    assert x.version == 1


def test_zero_on_a_gradient_buffer_is_allowed():
    w = minidl.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    w.grad.zero_()
    np.testing.assert_array_equal(w.grad.array, [0.0, 0.0])


@pytest.mark.parametrize(
    ("convert", "dtype"),
    [
        (lambda t: t.astype(np.float64), np.float64),
        (lambda t: t.double(), np.float64),
        (lambda t: t.float(), np.float32),
        (lambda t: t.long(), np.int64),
        (lambda t: t.to(np.float16), np.float16),
    ],
    ids=["astype", "double", "float", "long", "to"],
)
def test_dtype_conversions(convert, dtype):
    t = minidl.tensor(np.array([1.25, -2.5], dtype=np.float64))
    out = convert(t)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.array, np.array([1.25, -2.5]).astype(dtype))


def test_bool_of_a_many_element_tensor_is_ambiguous():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(minidl.tensor([1.0, 2.0]))
    assert bool(minidl.tensor([1.0]))


# ---------------------------------------------------------------------------
# repr
# ---------------------------------------------------------------------------
def test_repr_shows_values_dtype_and_grad_state():
    assert repr(minidl.tensor([1.5, 2.0])) == "tensor([1.5, 2. ])"
    assert repr(minidl.tensor([1, 2])) == "tensor([1, 2], dtype=int64)"
    leaf = minidl.tensor(np.array([1.0]), requires_grad=True)
    assert repr(leaf) == "tensor([1.], dtype=float64, requires_grad=True)"
    assert repr(minidl.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<Mul>)"


def test_repr_of_a_large_tensor_is_summarized():
    text = repr(minidl.zeros(1000))
    assert "..." in text and len(text) < 400


# ---------------------------------------------------------------------------
# Comparisons: bool tensors, never any gradient
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("compare", "reference"),
    [
        (lambda a, b: a > b, np.greater),
        (lambda a, b: a >= b, np.greater_equal),
        (lambda a, b: a < b, np.less),
        (lambda a, b: a <= b, np.less_equal),
        (lambda a, b: a == b, np.equal),
        (lambda a, b: a != b, np.not_equal),
    ],
    ids=[">", ">=", "<", "<=", "==", "!="],
)
def test_comparisons_return_bool_tensors_without_grad(compare, reference):
    a_values = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b_values = np.array([2.0, 2.0, 2.0])
    a = minidl.tensor(a_values, requires_grad=True)
    b = minidl.tensor(b_values, requires_grad=True)
    for result, expected in [
        (compare(a, b), reference(a_values, b_values)),  # broadcasting tensor vs tensor
        (compare(a, 2.0), reference(a_values, 2.0)),  # tensor vs number
    ]:
        assert result.dtype == np.bool_
        assert not result.requires_grad and result.grad_fn is None
        np.testing.assert_array_equal(result.array, expected)


def test_comparison_of_unbroadcastable_shapes_names_the_op():
    with pytest.raises(ValueError, match=r"greater: shapes \(2,\) and \(3,\) cannot be broadcast"):
        _ = minidl.tensor([1.0, 2.0]) > minidl.tensor([1.0, 2.0, 3.0])


def test_tensors_hash_by_identity_so_they_can_key_dicts():
    a, b = minidl.tensor([1.0]), minidl.tensor([1.0])
    assert len({a: 1, b: 2}) == 2
