"""Shape ops: reshape, transpose/permute, expand, squeeze/unsqueeze, flatten, concat, stack,
split, indexing (ints, slices, None, Ellipsis, integer arrays with repeats, boolean masks)
and pad. Forward values against NumPy, gradients by gradcheck on hypothesis-generated
shapes and indices, view semantics (shared version counter) and error messages.
"""

import numpy as np
import pytest
import torch
from core_helpers import check_grad, leaf, rng
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tolerances import assert_within, eps

import minidl

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
seeds = st.integers(0, 2**16)


# ---------------------------------------------------------------------------
# reshape, permute, transpose
# ---------------------------------------------------------------------------
@st.composite
def reshape_cases(draw):
    shape = draw(shapes)
    size = int(np.prod(shape))
    target = list(draw(st.permutations(shape)))  # same sizes, another order
    target = draw(st.sampled_from([target, [size], [1, *target, 1], []] if size == 1 else [target, [size]]))
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1  # let reshape infer one size
    return shape, tuple(target)


@given(case=reshape_cases(), seed=seeds)
def test_reshape_matches_numpy_and_gradchecks(case, seed):
    shape, target = case
    x = leaf(shape, seed=seed)
    out = x.reshape(target)
    np.testing.assert_array_equal(out.data, x.data.reshape(target))
    check_grad(lambda t: t.reshape(target), [x])


def test_reshape_accepts_both_argument_styles():
    x = leaf((2, 3))
    assert x.reshape(3, 2).shape == (3, 2) and x.reshape((3, 2)).shape == (3, 2) and x.view(-1).shape == (6,)


@st.composite
def permutations_of_axes(draw):
    shape = draw(shapes)
    order = draw(st.permutations(range(len(shape))))
    negate = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    return shape, tuple(a - len(shape) if neg else a for a, neg in zip(order, negate))


@given(case=permutations_of_axes(), seed=seeds)
def test_permute_matches_numpy_and_gradchecks(case, seed):
    shape, axes = case
    x = leaf(shape, seed=seed)
    np.testing.assert_array_equal(x.permute(*axes).data, np.transpose(x.data, axes))
    check_grad(lambda t: t.permute(axes), [x])


@pytest.mark.parametrize(("axes", "expected"), [((), (4, 3, 2)), ((0, 2), (4, 3, 2)), ((-1, -2), (2, 4, 3))])
def test_transpose_reverses_or_swaps_axes(axes, expected):
    x = leaf((2, 3, 4))
    out = x.transpose(*axes)
    assert out.shape == expected
    reference = torch.tensor(x.data).permute(2, 1, 0) if not axes else torch.tensor(x.data).transpose(*axes)
    np.testing.assert_array_equal(out.data, reference.numpy())
    check_grad(lambda t: t.transpose(*axes), [x])


def test_dot_T_is_the_matrix_transpose():
    x = leaf((2, 3))
    np.testing.assert_array_equal(x.T.data, x.data.T)


# ---------------------------------------------------------------------------
# expand, squeeze, unsqueeze, flatten
# ---------------------------------------------------------------------------
@st.composite
def expand_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=2))
    target = [draw(st.integers(1, 3)) if n == 1 else n for n in shape]
    target = [-1 if draw(st.booleans()) else n for n in target]  # -1 keeps the size
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    return shape, tuple(lead + target)


@given(case=expand_cases(), seed=seeds)
def test_expand_matches_numpy_broadcast_and_gradchecks(case, seed):
    shape, target = case
    x = leaf(shape, seed=seed)
    out = x.expand(*target)
    resolved = tuple(x.shape[i - (len(target) - x.ndim)] if n == -1 else n for i, n in enumerate(target))
    np.testing.assert_array_equal(out.data, np.broadcast_to(x.data, resolved))
    check_grad(lambda t: t.expand(target), [x])


@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2), seed=seeds)
def test_squeeze_all_and_unsqueeze_round_trip(shape, seed):
    x = leaf(shape, seed=seed)
    squeezed = x.squeeze()
    np.testing.assert_array_equal(squeezed.data, np.squeeze(x.data))
    check_grad(lambda t: t.squeeze(), [x])
    for axis in range(-x.ndim - 1, x.ndim + 1):
        out = x.unsqueeze(axis)
        np.testing.assert_array_equal(out.data, np.expand_dims(x.data, axis))
    check_grad(lambda t: t.unsqueeze(-1).unsqueeze(0), [x])


def test_squeeze_one_axis_or_a_tuple():
    x = leaf((1, 3, 1, 2))
    assert x.squeeze(0).shape == (3, 1, 2)
    assert x.squeeze(-2).shape == (1, 3, 2)
    assert x.squeeze((0, 2)).shape == (3, 2)
    check_grad(lambda t: t.squeeze((0, -2)), [x])


@pytest.mark.parametrize(
    ("start", "end", "expected"), [(0, -1, (24,)), (1, 2, (2, 12)), (-2, -1, (2, 12)), (0, 1, (6, 4))]
)
def test_flatten_merges_a_range_of_axes(start, end, expected):
    x = leaf((2, 3, 4))
    out = x.flatten(start, end)
    assert out.shape == expected
    np.testing.assert_array_equal(out.data, torch.tensor(x.data).flatten(start, end).numpy())
    check_grad(lambda t: t.flatten(start, end), [x])


def test_flatten_of_a_0d_tensor_has_one_element():
    x = minidl.tensor(np.array(2.0), requires_grad=True)
    assert x.flatten().shape == (1,)
    check_grad(lambda t: t.flatten(), [x])


@pytest.mark.parametrize(
    ("op", "shape"),
    [
        (lambda t: t.squeeze(0), ()),
        (lambda t: t.squeeze(-1), ()),
        (lambda t: t.unsqueeze(0), (1,)),
        (lambda t: t.unsqueeze(-1).unsqueeze(-1), (1, 1)),
        (lambda t: t.reshape(1, 1), (1, 1)),
        (lambda t: t.expand(2, 3), (2, 3)),
        (lambda t: t.permute(), ()),
        (lambda t: t.T, ()),
        (lambda t: t[None, ...], (1,)),
    ],
    ids=["squeeze0", "squeeze-1", "unsqueeze", "unsqueeze2", "reshape", "expand", "permute", "T", "getitem"],
)
def test_shape_ops_on_0d_tensors_like_torch(op, shape):
    x = minidl.tensor(np.array(1.5), requires_grad=True)
    out = op(x)
    assert out.shape == shape
    np.testing.assert_array_equal(out.data, np.full(shape, 1.5))
    check_grad(op, [x])


# ---------------------------------------------------------------------------
# concat, stack, split
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_joins_along_an_axis(axis):
    a, b = leaf((2, 3), seed=1), leaf((2, 3) if axis == 0 else (2, 1), seed=2)
    if axis == 0:
        b = leaf((1, 3), seed=2)
    out = minidl.concat([a, b, a], axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate([a.data, b.data, a.data], axis=axis))
    check_grad(lambda p, q: minidl.cat([p, q, p], axis=axis), [a, b])  # a used twice: gradients add


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_joins_along_a_new_axis(axis):
    a, b = leaf((2, 3), seed=1), leaf((2, 3), seed=2)
    out = minidl.stack([a, b], axis=axis)
    np.testing.assert_array_equal(out.data, np.stack([a.data, b.data], axis=axis))
    check_grad(lambda p, q: minidl.stack([p, q], axis=axis), [a, b])


def test_stack_of_0d_tensors():
    a, b = minidl.tensor(np.array(1.0), requires_grad=True), minidl.tensor(np.array(2.0), requires_grad=True)
    np.testing.assert_array_equal(minidl.stack([a, b]).data, [1.0, 2.0])
    check_grad(lambda p, q: minidl.stack([p, q]) * minidl.tensor(np.array([3.0, 5.0])), [a, b])


@pytest.mark.parametrize(
    ("sections", "axis", "sizes"), [(2, 0, [2, 2, 1]), ([1, 0, 3], 1, [1, 0, 3]), (4, -1, [4]), (1, 1, [1, 1, 1, 1])]
)
def test_split_cuts_into_pieces(sections, axis, sizes):
    x = leaf((5, 4), seed=3)
    pieces = x.split(sections, axis=axis)
    assert [p.shape[axis] for p in pieces] == sizes
    reference = torch.tensor(x.data).split(sections, dim=axis)
    for piece, expected in zip(pieces, reference):
        np.testing.assert_array_equal(piece.data, expected.numpy())
    check_grad(lambda t: t.split(sections, axis=axis), [x])


def test_split_then_concat_gives_back_the_gradient_of_the_whole():
    x = leaf((4, 3), seed=2)
    left, right = minidl.split(x, [1, 3])
    (minidl.concat([right * 2, left * 3]).sum()).backward()
    np.testing.assert_array_equal(x.grad.data, np.array([[3.0] * 3] + [[2.0] * 3] * 3))


# ---------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------
@st.composite
def basic_index_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    return shape, draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))


@given(case=basic_index_cases(), seed=seeds)
def test_basic_indexing_matches_numpy_and_gradchecks(case, seed):
    shape, index = case
    x = leaf(shape, seed=seed)
    out = x[index]
    np.testing.assert_array_equal(out.data, x.data[index])
    check_grad(lambda t: t[index], [x])


@st.composite
def integer_array_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    index = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)))
    return shape, index


@given(case=integer_array_cases(), seed=seeds)
def test_integer_array_indexing_scatter_adds_repeated_indices(case, seed):
    shape, index = case
    x = leaf(shape, seed=seed)
    out = x[index]
    np.testing.assert_array_equal(out.data, x.data[index])
    weights = rng(seed).standard_normal(out.shape)
    (out * minidl.tensor(weights)).sum().backward()
    expected = np.zeros(shape)
    np.add.at(expected, index, weights)  # every occurrence of an element adds its gradient
    # Repeated elements sum their gradients, maybe in another order: the sum bound over the repeats.
    magnitudes = np.zeros(shape)
    np.add.at(magnitudes, index, np.abs(weights))
    assert_within(x.grad.data, expected, 2 * max(weights.size, 1) * eps(np.float64) * magnitudes)
    check_grad(lambda t: t[index], [x])


def test_repeated_indices_accumulate_like_torch():
    x = leaf((4, 2), seed=1)
    index = [0, 2, 0, 0, 3]
    (x[index] * leaf((5, 2), seed=2).detach()).sum().backward()
    xt = torch.tensor(x.data, requires_grad=True)
    (xt[index] * torch.tensor(leaf((5, 2), seed=2).data)).sum().backward()
    magnitudes = np.zeros((4, 2))
    np.add.at(magnitudes, index, np.abs(leaf((5, 2), seed=2).data))
    # Row 0 adds 3 gradients, in torch's order or ours: the sum bound for 3 terms.
    assert_within(x.grad.data, xt.grad.numpy(), 2 * 3 * eps(np.float64) * magnitudes, "repeated indices")


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), seed=seeds)
def test_boolean_mask_indexing(shape, seed):
    x = leaf(shape, seed=seed)
    mask = rng(seed + 7).random(shape) > 0.4
    np.testing.assert_array_equal(x[mask].data, x.data[mask])
    np.testing.assert_array_equal(x[minidl.tensor(mask)].data, x.data[mask])  # a bool tensor works too
    check_grad(lambda t: t[mask], [x])
    row_mask = rng(seed).random(shape[0]) > 0.5
    check_grad(lambda t: t[row_mask], [x])


@pytest.mark.parametrize(
    "index",
    [
        (1, 2),  # down to a 0-d tensor
        (Ellipsis, 0),
        (None, slice(None, None, -1)),
        (slice(1, None), [0, 0, 3]),  # a slice mixed with an integer array
        ([[0, 1], [1, 0]], slice(None)),
        (np.array([2, -1, 0]), np.array([3, 3, -4])),
    ],
    ids=["ints", "ellipsis", "newaxis-reversed", "slice-and-array", "2d-array", "negative-arrays"],
)
def test_mixed_indices_match_numpy(index):
    x = leaf((3, 4), seed=4)
    out = x[index]
    np.testing.assert_array_equal(out.data, x.data[tuple(np.asarray(i) if isinstance(i, list) else i for i in index)])
    check_grad(lambda t: t[index], [x])


def test_an_integer_tensor_works_as_an_index():
    x = leaf((5,), seed=1)
    np.testing.assert_array_equal(x[minidl.tensor([4, 4, 0])].data, x.data[[4, 4, 0]])
    np.testing.assert_array_equal(x[minidl.tensor(2)].data, x.data[2])


def test_iterating_a_tensor_backpropagates_through_each_row():
    x = leaf((3, 2), seed=1)
    total = None
    for i, row in enumerate(x):
        total = row.sum() * (i + 1) if total is None else total + row.sum() * (i + 1)
    total.backward()
    np.testing.assert_array_equal(x.grad.data, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])


# ---------------------------------------------------------------------------
# pad
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("widths", "value"), [([(1, 2), (0, 1)], 0.0), ([(2, 0)], -1.5), ([(0, 0), (0, 0)], 0.0), ([(1, 1), (3, 2)], 7.0)]
)
def test_pad_matches_numpy(widths, value):
    x = leaf((2, 3), seed=2)
    out = minidl.pad(x, widths, value=value)
    full = [(0, 0)] * (2 - len(widths)) + list(widths)  # widths given for the trailing axes
    np.testing.assert_array_equal(out.data, np.pad(x.data, full, constant_values=value))
    check_grad(lambda t: minidl.pad(t, widths, value=value), [x])


# ---------------------------------------------------------------------------
# Views share the version counter of their base
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_view", [lambda t: t.reshape(6), lambda t: t.T, lambda t: t.expand(4, 2, 3)], ids=["reshape", "T", "expand"]
)
def test_views_share_the_version_counter(make_view):
    base = minidl.tensor(np.ones((2, 3)))
    view = make_view(base)
    base.mul_(2)
    assert view.version == base.version == 1


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x: x.reshape(4, 2), ValueError, r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4, 2\)"),
        (lambda x: x.reshape(-1, -1), ValueError, r"reshape: .*only one dimension can be -1"),
        (lambda x: x.reshape(4, -1), ValueError, r"reshape: .*do not divide evenly"),
        (lambda x: x.permute(0, 0), ValueError, r"permute: \(0, 0\) is not a permutation of the 2 axes"),
        (lambda x: x.permute(0, 5), ValueError, r"permute: \(0, 5\) is not a permutation of the 2 axes"),
        (lambda x: x.permute(1, 0, 2), ValueError, r"permute: \(1, 0, 2\) is not a permutation"),
        (lambda x: x.transpose(0), ValueError, r"transpose: give no axes \(reverse all\) or two axes"),
        (lambda x: x.transpose(0, 2), ValueError, r"transpose: axis 2 is out of range"),
        (lambda x: x.expand(2, 4), ValueError, r"expand: cannot broadcast shape \(2, 3\) to \(2, 4\)"),
        (lambda x: x.expand(3), ValueError, r"expand: cannot expand shape \(2, 3\) to fewer dimensions"),
        (lambda x: x.expand(-1, 2, 3), ValueError, r"expand: cannot broadcast shape \(2, 3\) to \(-1, 2, 3\)"),
        (lambda x: x.squeeze(0), ValueError, r"squeeze: axis 0 of shape \(2, 3\) has size 2, not 1"),
        (lambda x: x.unsqueeze(3), ValueError, r"unsqueeze: axis 3 is out of range for a result with 3 dim"),
        (lambda x: x.flatten(1, 0), ValueError, r"flatten: start_axis 1 comes after end_axis 0"),
        (lambda x: minidl.concat([x, minidl.ones(3, 3)], 1), ValueError, r"concat: shapes \(2, 3\) and \(3, 3\)"),
        (lambda x: minidl.concat([]), ValueError, r"concat: expected a non-empty sequence"),
        (lambda x: minidl.concat([x[0, 0], x[0, 1]]), ValueError, r"concat: 0-d tensors have no axis .* use stack"),
        (lambda x: x[0, 0].split(1), ValueError, r"split: cannot split a 0-d tensor"),
        (lambda x: x[0, 0].squeeze(1), ValueError, r"squeeze: axis 1 is out of range for a 0-d tensor"),
        (lambda x: minidl.stack([x, minidl.ones(3, 2)]), ValueError, r"stack: all tensors need the same shape"),
        (lambda x: minidl.stack([x, x], axis=3), ValueError, r"stack: axis 3 is out of range"),
        (lambda x: x.split([1, 1], axis=1), ValueError, r"split: sections \[1, 1\] do not add up to .* 3"),
        (lambda x: x.split(0), ValueError, r"split: split size must be positive"),
        (lambda x: x[5], IndexError, r"getitem: index 5 is invalid for shape \(2, 3\)"),
        (lambda x: x[[0, 7]], IndexError, r"getitem: .* is invalid for shape \(2, 3\)"),
        (lambda x: x[np.ones(3, dtype=bool)], IndexError, r"getitem: .* is invalid for shape \(2, 3\)"),
        (lambda x: minidl.pad(x, [(1, -1)]), ValueError, r"pad: widths \[\(1, -1\)\] must be .* non-negative"),
        (lambda x: minidl.pad(x, [(1, 1)] * 3), ValueError, r"pad: widths .* at most 2"),
    ],
    ids=lambda value: None if callable(value) or isinstance(value, type) else value[:28],
)
def test_shape_op_errors_name_the_op_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call(minidl.ones(2, 3))


def test_contiguous_copies_a_strided_view_into_row_major_order_and_passes_gradients_through():
    x = leaf((3, 4))
    view = x.permute(1, 0)
    assert not view.data.flags.c_contiguous
    compact = view.contiguous()
    assert compact.data.flags.c_contiguous
    np.testing.assert_array_equal(compact.data, x.data.T)
    assert x.contiguous() is x  # already row-major: nothing to do
    check_grad(lambda a: a.permute(1, 0).contiguous() * a.T, [x])
