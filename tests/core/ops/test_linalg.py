"""Linear-algebra, construction and slicing operators against NumPy."""

import itertools

import numpy as np
import pytest
import sympy as sp

from symderive.core.ir import leaf, size_symbol
from symderive.core.ops import OPERATORS
from symderive.decide.concrete import Evaluator, concrete_int, evaluate, normalise_sizes
from symderive.errors import InputError

N, M, K, B = size_symbol("n"), size_symbol("m"), size_symbol("k"), size_symbol("b")
SIZES = {"n": 3, "m": 4, "k": 2, "b": 5}


def _concrete(shape, sizes):
    return tuple(concrete_int(d, normalise_sizes(sizes)) for d in shape)


def check(op_name, inputs, options, expected_fn, sizes=SIZES, seed=0):
    """Evaluate ``op`` on symbolic leaves and its lowering; compare both with NumPy and the shape rule."""
    op = OPERATORS[op_name]
    rng = np.random.default_rng(seed)
    arrays = {name: rng.normal(size=_concrete(shape, sizes)) for name, shape in inputs.values()}
    tensors = {p: leaf(name, shape) for p, (name, shape) in inputs.items()}
    expected = np.asarray(expected_fn(*(arrays[name] for name, _ in inputs.values()), **options), dtype=float)
    got = evaluate(op.definition(**tensors, **options), sizes, arrays)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    shape, valid = op.shape_rule(**{p: shape for p, (_, shape) in inputs.items()}, **options)
    assert _concrete(shape, sizes) == expected.shape
    assert Evaluator(normalise_sizes(sizes), {}).truth(valid)
    code = op.to_numpy(**{p: name for p, (name, _) in inputs.items()}, **options)
    lowered = eval(compile(code, "<lowering>", "eval"), {"np": np, **arrays})
    np.testing.assert_allclose(lowered, expected, rtol=1e-10, atol=1e-12)
    assert isinstance(op.to_latex(**{p: name for p, (name, _) in inputs.items()}, **options), str)


MATMUL = [
    ((N, K), (K, M)),
    ((K,), (K, M)),
    ((N, K), (K,)),
    ((K,), (K,)),
    ((B, N, K), (K, M)),
    ((B, 1, N, K), (M, K, 1)),
    ((1, K), (K, 1)),
    ((K,), (B, K, M)),
]


@pytest.mark.parametrize("s1, s2", MATMUL, ids=[f"{a}@{b}" for a, b in MATMUL])
def test_matmul_matches_numpy(s1, s2):
    check("matmul", {"x1": ("a", s1), "x2": ("c", s2)}, {}, np.matmul)


@pytest.mark.parametrize(
    "s1, s2, sizes",
    [
        ((N, K), (M, N), {"n": 2, "k": 3, "m": 4}),
        ((N,), (M,), {"n": 2, "m": 3}),
        ((B, N, K), (M, K, N), {"b": 2, "m": 3, "n": 4, "k": 4}),
    ],
)
def test_matmul_invalid_where_numpy_raises(s1, s2, sizes):
    _, valid = OPERATORS["matmul"].shape_rule(x1=s1, x2=s2)
    assert not Evaluator(normalise_sizes(sizes), {}).truth(valid)
    with pytest.raises(ValueError):
        np.matmul(np.zeros(_concrete(s1, sizes)), np.zeros(_concrete(s2, sizes)))


@pytest.mark.parametrize(
    "shape, axes", [((N, M), None), ((N, M, K), None), ((N, M, K), (1, -1, 0)), ((1, M), None), ((N,), None)]
)
def test_transpose_matches_numpy(shape, axes):
    check("transpose", {"a": ("a", shape)}, {"axes": axes}, np.transpose)


@pytest.mark.parametrize(
    "shape, axis", [((N, M), None), ((N, M), 0), ((N, M, K), -1), ((N, M, K), (0, 2)), ((N,), None)]
)
def test_flip_matches_numpy(shape, axis):
    check("flip", {"m": ("a", shape)}, {"axis": axis}, np.flip)


@pytest.mark.parametrize(
    "shape, k, axes",
    [((N, M), 1, (0, 1)), ((N, M), 2, (0, 1)), ((N, M), 3, (0, 1)), ((N, M), -1, (0, 1)), ((N, M, K), 1, (2, 0))],
)
def test_rot90_matches_numpy(shape, k, axes):
    check("rot90", {"m": ("a", shape)}, {"k": k, "axes": axes}, np.rot90)


@pytest.mark.parametrize("s1, s2", [((N,), (M,)), ((N, K), (M,)), ((1,), (M, K)), ((), (N,))])
def test_outer_matches_numpy(s1, s2):
    check("outer", {"a": ("a", s1), "b": ("c", s2)}, {}, np.outer)


@pytest.mark.parametrize(
    "s1, s2", [((N,), (N,)), ((N, K), (K, M)), ((N, K), (K,)), ((B, N, K), (M, K, N)), ((), (N, M)), ((K,), (K, M))]
)
def test_dot_matches_numpy(s1, s2):
    check("dot", {"a": ("a", s1), "b": ("c", s2)}, {}, np.dot, sizes={"n": 3, "m": 4, "k": 3, "b": 2})


EINSUM = [
    ("ij,jk->ik", ((N, K), (K, M))),
    ("ij,jk", ((N, K), (K, M))),
    ("ij,i->j", ((N, M), (N,))),
    ("ij->ji", ((N, M),)),
    ("ii->i", ((N, N),)),
    ("ii", ((N, N),)),
    ("ij->", ((N, M),)),
    ("bij,bjk->bik", ((B, N, K), (B, K, M))),
    ("i,j->ij", ((N,), (M,))),
    ("ij,ij->i", ((N, M), (1, M))),
    ("ba,ca", ((N, M), (K, M))),
]


@pytest.mark.parametrize("spec, shapes", EINSUM, ids=[s for s, _ in EINSUM])
def test_einsum_matches_numpy(spec, shapes):
    op = OPERATORS["einsum"]
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=_concrete(s, SIZES)) for s in shapes]
    names = [f"t{k}" for k in range(len(shapes))]
    expected = np.asarray(np.einsum(spec, *arrays), dtype=float)
    t = op.definition(subscripts=spec, operands=tuple(leaf(nm, s) for nm, s in zip(names, shapes, strict=True)))
    np.testing.assert_allclose(evaluate(t, SIZES, dict(zip(names, arrays, strict=True))), expected, rtol=1e-10)
    shape, _ = op.shape_rule(subscripts=spec, operands=shapes)
    assert _concrete(shape, SIZES) == expected.shape
    lowered = eval(
        op.to_numpy(subscripts=spec, operands=tuple(names)), {"np": np, **dict(zip(names, arrays, strict=True))}
    )
    np.testing.assert_allclose(lowered, expected, rtol=1e-10)


def test_einsum_refuses_ellipsis_and_wrong_arity():
    with pytest.raises(InputError):
        OPERATORS["einsum"].definition(subscripts="...i->i", operands=(leaf("a", (N, M)),))
    with pytest.raises(InputError):
        OPERATORS["einsum"].definition(subscripts="ij,jk", operands=(leaf("a", (N, M)),))


@pytest.mark.parametrize(
    "shape, offset, axis1, axis2",
    [((N, M), 0, 0, 1), ((N, M), 1, 0, 1), ((N, M), -2, 0, 1), ((N, M, K), 0, 0, -1), ((N, M, K), 1, 2, 1)],
)
def test_trace_matches_numpy(shape, offset, axis1, axis2):
    check("trace", {"a": ("a", shape)}, {"offset": offset, "axis1": axis1, "axis2": axis2}, np.trace)


@pytest.mark.parametrize(
    "shape, k", [((N,), 0), ((N,), 2), ((N,), -1), ((N, M), 0), ((N, M), 1), ((N, M), -2), ((M, N), 3)]
)
def test_diag_matches_numpy(shape, k):
    check("diag", {"v": ("a", shape)}, {"k": k}, np.diag)


@pytest.mark.parametrize(
    "shape, pad_width",
    [((N,), 2), ((N,), (1, 3)), ((N, M), ((0, 1), (2, 0))), ((N, M), ((1, 2),)), ((N, M), (1,)), ((1, M), 0)],
)
def test_pad_matches_numpy(shape, pad_width):
    check("pad", {"array": ("a", shape)}, {"pad_width": pad_width}, np.pad)


def test_pad_refuses_other_modes():
    with pytest.raises(InputError, match="reflect"):
        OPERATORS["pad"].definition(array=leaf("a", (N,)), pad_width=1, mode="reflect")
    with pytest.raises(InputError, match="constant_values"):
        OPERATORS["pad"].definition(array=leaf("a", (N,)), pad_width=1, constant_values=2)


def test_pad_with_symbolic_width():
    t = OPERATORS["pad"].definition(array=leaf("a", (N,)), pad_width=(K - 1, K - 1))
    a = np.random.default_rng(4).normal(size=3)
    np.testing.assert_allclose(evaluate(t, {"n": 3, "k": 3}, {"a": a}), np.pad(a, (2, 2)))


@pytest.mark.parametrize("shape", [(N, M), 3, (N,), (1, K)])
@pytest.mark.parametrize("name", ["zeros", "ones"])
def test_constructors_match_numpy(name, shape):
    op = OPERATORS[name]
    dims = _concrete(shape if isinstance(shape, tuple) else (shape,), SIZES)
    expected = getattr(np, name)(dims)
    np.testing.assert_array_equal(evaluate(op.definition(shape=shape), SIZES, {}), expected)
    out_shape, _ = op.shape_rule(shape=shape)
    assert _concrete(out_shape, SIZES) == expected.shape
    like = OPERATORS[f"{name}_like"].definition(a=leaf("a", dims))
    np.testing.assert_array_equal(evaluate(like, SIZES, {"a": np.full(dims, 7.0)}), expected)


@pytest.mark.parametrize("N_, M_, k", [(N, None, 0), (N, M, 1), (N, M, -2), (M, N, 2), (3, 5, -1)])
def test_eye_matches_numpy(N_, M_, k):
    op = OPERATORS["eye"]
    n = concrete_int(N_, normalise_sizes(SIZES))
    m = None if M_ is None else concrete_int(M_, normalise_sizes(SIZES))
    expected = np.eye(n, m, k)
    np.testing.assert_array_equal(evaluate(op.definition(N=N_, M=M_, k=k), SIZES, {}), expected)
    lowered = eval(op.to_numpy(N=N_, M=M_, k=k), {"np": np, "n": SIZES["n"], "m": SIZES["m"]})
    np.testing.assert_array_equal(lowered, expected)


def _s(lo=None, hi=None, step=None):
    return (lo, hi, step)


GETITEM = [
    ((N, M), (_s(1),), lambda a: a[1:]),
    ((N, M), (_s(None, -1), _s(None, None, 2)), lambda a: a[:-1, ::2]),
    ((N, M), (_s(None, None, -1),), lambda a: a[::-1]),
    ((N, M), (-1,), lambda a: a[-1]),
    ((N, M), (0, _s(1, N)), lambda a: a[0, 1:3]),
    ((N, M), (_s(), 2), lambda a: a[:, 2]),
    ((N, M), (_s(5, 10),), lambda a: a[5:10]),
    ((N, M), (_s(-10, 2),), lambda a: a[-10:2]),
    ((N, M), (_s(N - 1, None, -2), _s(-2, 0, -1)), lambda a: a[2::-2, -2:0:-1]),
    ((N, M, K), (1, _s(None, None, 3)), lambda a: a[1, ::3]),
    ((N,), (_s(M - K, None),), lambda a: a[2:]),
    ((N, M), (_s(-1, -3, -1),), lambda a: a[-1:-3:-1]),
    ((N, M), (_s(2, 1),), lambda a: a[2:1]),
    # NumPy's new axis and ellipsis
    ((N, M), (_s(), "newaxis"), lambda a: a[:, None]),
    ((N, M), ("newaxis",), lambda a: a[None]),
    ((N, M), ("...", "newaxis"), lambda a: a[..., None]),
    ((N, M, K), ("...", 1), lambda a: a[..., 1]),
    ((N, M, K), (0, "..."), lambda a: a[0, ...]),
    ((N, M, K), ("newaxis", _s(None, None, -1), "...", "newaxis", _s(1)), lambda a: a[None, ::-1, ..., None, 1:]),
    ((N,), ("...",), lambda a: a[...]),
    ((N, M), ("newaxis", "newaxis", -1, "...", _s(2)), lambda a: a[None, None, -1, ..., 2:]),
    ((), ("newaxis",), lambda a: a[None]),
]


@pytest.mark.parametrize("shape, key, expected_fn", GETITEM, ids=[str(k) for _, k, _ in GETITEM])
def test_getitem_matches_numpy(shape, key, expected_fn):
    op = OPERATORS["getitem"]
    a = np.random.default_rng(5).normal(size=_concrete(shape, SIZES))
    expected = expected_fn(a)
    t = op.definition(x=leaf("a", shape), key=key)
    np.testing.assert_allclose(evaluate(t, SIZES, {"a": a}), expected)
    out_shape, valid = op.shape_rule(x=shape, key=key)
    assert _concrete(out_shape, SIZES) == expected.shape
    lowered = eval(op.to_numpy(x="a", key=key), {"np": np, "a": a, **SIZES})
    np.testing.assert_allclose(lowered, expected)


def test_getitem_out_of_range_index_is_invalid():
    _, valid = OPERATORS["getitem"].shape_rule(x=(N,), key=(N,))
    assert not Evaluator(normalise_sizes({"n": 3}), {}).truth(valid)
    _, valid = OPERATORS["getitem"].shape_rule(x=(N,), key=(-N,))
    assert Evaluator(normalise_sizes({"n": 3}), {}).truth(valid)
    with pytest.raises(InputError):
        OPERATORS["getitem"].definition(x=leaf("a", (N,)), key=("...", 0, "..."))
    with pytest.raises(InputError):
        OPERATORS["getitem"].definition(x=leaf("a", (N,)), key=(0, "newaxis", 1))
    with pytest.raises(InputError):
        OPERATORS["getitem"].definition(x=leaf("a", (N,)), key=(_s(0, N, K),))


def test_getitem_symbolic_bound_holds_for_every_size():
    # a[k:] on a length-n axis, for k both below and above n
    t = OPERATORS["getitem"].definition(x=leaf("a", (N,)), key=(_s(K),))
    a = np.random.default_rng(6).normal(size=4)
    for k in range(1, 7):
        np.testing.assert_allclose(evaluate(t, {"n": 4, "k": k}, {"a": a}), a[k:])
    assert sp.simplify(t.shape[0].subs({N: 5, K: 2})) == 3


EINSUM_VALIDITY_SPECS = [
    "ii",
    "ii->i",
    "iij,j->i",
    "iji->j",
    "ii,i->i",
    "ij,jk",
    "ij,ij->ij",
    "ij,j->i",
    "i,i->i",
    "ij,kj->ik",
    "ij,ji",
    "ij,jk,kl->il",
    "ij,i->ij",
]


def _accepts(spec, shapes, optimize):
    arrays = [np.ones(s) for s in shapes]
    try:
        np.einsum(spec, *arrays, optimize=optimize)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("spec", EINSUM_VALIDITY_SPECS)
def test_einsum_validity_is_exactly_where_numpy_accepts(spec):
    # one size symbol per dimension; every assignment from {1, 2, 3}: size-1 broadcasting
    # across operands is allowed, a label repeated within one operand needs equal sizes
    labels = spec.split("->")[0].split(",")
    dims = [[size_symbol(f"d{k}_{j}") for j in range(len(lab))] for k, lab in enumerate(labels)]
    flat = [d for ds in dims for d in ds]
    _, valid = OPERATORS["einsum"].shape_rule(subscripts=spec, operands=tuple(tuple(ds) for ds in dims))
    for values in itertools.product([1, 2, 3], repeat=len(flat)):
        at = dict(zip(flat, values, strict=True))
        shapes = [tuple(at[d] for d in ds) for ds in dims]
        accepted = _accepts(spec, shapes, optimize=False)
        assert accepted == _accepts(spec, shapes, optimize=True), (spec, shapes)
        assert bool(valid.subs(at)) == accepted, (spec, shapes, valid)


def test_einsum_diagonal_of_a_non_square_matrix_is_invalid_even_with_a_size_one_side():
    with pytest.raises(ValueError):
        np.einsum("ii", np.ones((2, 1)))
    _, valid = OPERATORS["einsum"].shape_rule(subscripts="ii", operands=((N, M),))
    assert valid.subs({N: 2, M: 1}) == sp.false and valid.subs({N: 1, M: 2}) == sp.false
    assert valid.subs({N: 2, M: 2}) == sp.true
