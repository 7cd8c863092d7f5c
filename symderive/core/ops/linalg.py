"""NumPy's linear-algebra and array-construction operators.

``matmul`` (``@``), ``transpose`` (also ``.T``), ``flip``, ``rot90``, ``outer``, ``dot``,
``einsum``, ``trace``, ``diag``, ``pad`` (constant zeros), ``zeros``, ``ones``, ``eye``,
``zeros_like``, ``ones_like`` and basic slicing (``getitem``), each with NumPy's meaning
over symbolic sizes.
"""

from __future__ import annotations

import sympy as sp

from ...errors import InputError
from ..ir import Iverson, Tensor, dummy_index, gsum, keep_domains
from .elementwise import (
    broadcast_index,
    broadcast_pair,
    broadcast_shapes,
    constant_int,
    elementwise_tensor,
    factor_paren,
    normalize_axes,
    normalize_axis,
    option_code,
    option_latex,
    paren,
)
from .table import Operator, Param, register


def _tensor(shape, element, valid=sp.true, zero_outside=False) -> Tensor:
    return Tensor(shape=tuple(sp.sympify(d) for d in shape), element=element, zero_outside=zero_outside, valid=valid)


# -- matmul -----------------------------------------------------------------------------
def kept_product(*factors: sp.Expr) -> sp.Expr:
    """The product of factors, undefined where one is (``0 * log(x)`` is nan in NumPy).

    >>> kept_product(sp.Integer(2), sp.Integer(3))
    6
    """
    return keep_domains(sp.Mul(*factors), *factors)


def matmul_shape(x1, x2):
    """``np.matmul``'s result shape and validity (1-D operands promoted, batch broadcast).

    >>> n, m, k = sp.symbols("n m k", integer=True, positive=True)
    >>> matmul_shape((n, k), (m,))
    ((n,), Eq(k, m))
    """
    if not x1 or not x2:
        raise InputError("matmul: operands must be at least 1-D (use * for scalars)")
    a = (sp.S.One,) + tuple(x1) if len(x1) == 1 else tuple(x1)
    b = tuple(x2) + (sp.S.One,) if len(x2) == 1 else tuple(x2)
    batch, valid = broadcast_shapes(a[:-2], b[:-2])
    shape = batch + (a[-2],) * (len(x1) > 1) + (b[-1],) * (len(x2) > 1)
    return shape, sp.And(valid, sp.Eq(a[-1], b[-2]))


def matmul_tensor(x1: Tensor, x2: Tensor) -> Tensor:
    """``x1 @ x2`` as a sum over the contracted index.

    >>> from ..ir import leaf, size_symbol
    >>> n, k = size_symbol("n"), size_symbol("k")
    >>> matmul_tensor(leaf("w", (n, k)), leaf("v", (k,))).shape
    (n,)
    """
    shape, valid = matmul_shape(x1.shape, x2.shape)
    a_shape = (sp.S.One,) + x1.shape if x1.ndim == 1 else x1.shape
    b_shape = x2.shape + (sp.S.One,) if x2.ndim == 1 else x2.shape
    batch, _ = broadcast_shapes(a_shape[:-2], b_shape[:-2])
    nb = len(batch)

    def element(idx):
        bidx, rest = idx[:nb], list(idx[nb:])
        i = rest.pop(0) if x1.ndim > 1 else sp.S.Zero
        j = rest.pop(0) if x2.ndim > 1 else sp.S.Zero
        k = dummy_index("k")
        ai = broadcast_index(bidx, a_shape[:-2], batch) + (i, k)
        bi = broadcast_index(bidx, b_shape[:-2], batch) + (k, j)
        ai = ai[1:] if x1.ndim == 1 else ai
        bi = bi[:-1] if x2.ndim == 1 else bi
        return gsum(kept_product(x1.at(ai), x2.at(bi)), (k, 0, a_shape[-1] - 1))

    return _tensor(shape, element, sp.And(valid, x1.valid, x2.valid), zero_outside=True)


register(
    Operator(
        name="matmul",
        family="numpy",
        params=(Param("x1", "tensor", required=True), Param("x2", "tensor", required=True)),
        definition=matmul_tensor,
        shape_rule=matmul_shape,
        to_numpy=lambda x1, x2: f"np.matmul({x1}, {x2})",
        to_latex=lambda x1, x2: f"{factor_paren(x1)} {factor_paren(x2)}",
        algebra="bilinear",
        by_name=False,
    )
)


# -- transpose, flip, rot90 ----------------------------------------------------------------
def transpose_axes(ndim: int, axes, op: str = "transpose") -> tuple[int, ...]:
    """The permutation ``np.transpose`` applies (reversal when ``axes`` is None).

    >>> transpose_axes(3, None), transpose_axes(3, (1, -1, 0))
    ((2, 1, 0), (1, 2, 0))
    """
    if axes is None:
        return tuple(reversed(range(ndim)))
    items = axes if isinstance(axes, tuple | list) else (axes,)
    perm = tuple(normalize_axis(a, ndim, op, "axes") for a in items)
    if sorted(perm) != list(range(ndim)):
        raise InputError(f"{op}: axes={axes} is not a permutation of the {ndim} axes")
    return perm


def transpose_shape(a, axes=None):
    """``np.transpose``'s result shape.

    >>> n, m = sp.symbols("n m")
    >>> transpose_shape((n, m))
    ((m, n), True)
    """
    perm = transpose_axes(len(a), axes)
    return tuple(a[p] for p in perm), sp.true


def transpose_tensor(a: Tensor, axes=None) -> Tensor:
    """``np.transpose(a, axes)``: ``out[i_0, ...] = a[j]`` with ``j[axes[k]] = i_k``.

    >>> from ..ir import leaf, size_symbol
    >>> transpose_tensor(leaf("w", (size_symbol("n"), size_symbol("k")))).shape
    (k, n)
    """
    perm = transpose_axes(a.ndim, axes)
    shape, _ = transpose_shape(a.shape, axes)

    def element(idx):
        src = [None] * a.ndim
        for k, p in enumerate(perm):
            src[p] = idx[k]
        return a.element(tuple(src))

    return _tensor(shape, element, a.valid, zero_outside=a.zero_outside)


def _transpose_latex(a, axes=None):
    if axes is None:
        return paren(a) + r"^{\top}"
    return rf"\operatorname{{transpose}}\left({a}, {option_latex(axes)}\right)"


register(
    Operator(
        name="transpose",
        booleans_as_numbers=True,
        family="numpy",
        params=(Param("a", "tensor", required=True), Param("axes", "axis")),
        definition=transpose_tensor,
        shape_rule=transpose_shape,
        to_numpy=lambda a, axes=None: (
            f"np.transpose({a})" if axes is None else f"np.transpose({a}, {option_code(axes)})"
        ),
        to_latex=_transpose_latex,
        algebra="linear",
    )
)


def flip_tensor(m: Tensor, axis=None) -> Tensor:
    """``np.flip(m, axis)``: index ``n - 1 - i`` along each flipped axis.

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> flip_tensor(leaf("w", (size_symbol("k"),))).element((index_symbol("i"),))
    w[-i + k - 1]
    """
    axes = normalize_axes(axis, m.ndim, "flip")

    def element(idx):
        return m.element(tuple(m.shape[d] - 1 - i if d in axes else i for d, i in enumerate(idx)))

    return _tensor(m.shape, element, m.valid, zero_outside=m.zero_outside)


def _flip_shape(m, axis=None):
    normalize_axes(axis, len(m), "flip")
    return tuple(m), sp.true


def _flip_latex(m, axis=None):
    if axis is None:
        return rf"\operatorname{{flip}}\left({m}\right)"
    return rf"\operatorname{{flip}}_{{{option_latex(axis)}}}\left({m}\right)"


register(
    Operator(
        name="flip",
        booleans_as_numbers=True,
        family="numpy",
        params=(Param("m", "tensor", required=True), Param("axis", "axis")),
        definition=flip_tensor,
        shape_rule=_flip_shape,
        to_numpy=lambda m, axis=None: f"np.flip({m}, {option_code(axis)})",
        to_latex=_flip_latex,
        algebra="linear",
    )
)


def _rot90_plan(ndim: int, k, axes) -> list[tuple[str, object]]:
    """NumPy's rot90 as a list of ("flip", axis) / ("transpose", perm) steps."""
    k = constant_int(k, "rot90", "k") % 4
    axes = tuple(axes)
    if len(axes) != 2:
        raise InputError("rot90: len(axes) must be 2")
    if ndim < 2:
        raise InputError("rot90: the array must be at least 2-D")
    a0, a1 = (normalize_axis(a, ndim, "rot90", "axes") for a in axes)
    if a0 == a1:
        raise InputError("rot90: axes must be different")
    perm = list(range(ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 0:
        return []
    if k == 2:
        return [("flip", a0), ("flip", a1)]
    if k == 1:
        return [("flip", a1), ("transpose", tuple(perm))]
    return [("transpose", tuple(perm)), ("flip", a1)]


def rot90_tensor(m: Tensor, k=1, axes=(0, 1)) -> Tensor:
    """``np.rot90(m, k, axes)``, composed of flips and a transpose as NumPy does.

    >>> from ..ir import leaf, size_symbol
    >>> rot90_tensor(leaf("w", (size_symbol("n"), size_symbol("k")))).shape
    (k, n)
    """
    out = m
    for step, arg in _rot90_plan(m.ndim, k, axes):
        out = flip_tensor(out, arg) if step == "flip" else transpose_tensor(out, arg)
    return out


def _rot90_shape(m, k=1, axes=(0, 1)):
    shape = tuple(m)
    for step, arg in _rot90_plan(len(m), k, axes):
        if step == "transpose":
            shape = tuple(shape[p] for p in arg)
    return shape, sp.true


register(
    Operator(
        name="rot90",
        booleans_as_numbers=True,
        family="numpy",
        params=(
            Param("m", "tensor", required=True),
            Param("k", "int", default=1),
            Param("axes", "axis", default=(0, 1)),
        ),
        definition=rot90_tensor,
        shape_rule=_rot90_shape,
        to_numpy=lambda m, k=1, axes=(0, 1): f"np.rot90({m}, {option_code(k)}, {option_code(axes)})",
        to_latex=lambda m, k=1, axes=(0, 1): rf"\operatorname{{rot90}}_{{{option_latex(k)}}}\left({m}\right)",
        algebra="linear",
    )
)


# -- outer, dot, einsum -------------------------------------------------------------------
def _size(shape) -> sp.Expr:
    return sp.Mul(*shape) if shape else sp.S.One


def flat_read(a: Tensor, p: sp.Expr) -> sp.Expr:
    """Element ``p`` of ``a.ravel()`` (row-major), for ``p`` inside the size.

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> flat_read(leaf("x", (size_symbol("n"),)), index_symbol("p"))
    x[p]
    """
    idx = []
    stride = sp.S.One
    for axis in reversed(range(a.ndim)):
        q = p if stride == 1 else sp.floor(p / stride)
        idx.append(q if axis == 0 else sp.Mod(q, a.shape[axis]))
        stride = stride * a.shape[axis]
    return a.element(tuple(reversed(idx)))


def outer_shape(a, b):
    """``np.outer``'s shape: the flattened sizes.

    >>> n, m = sp.symbols("n m")
    >>> outer_shape((n,), (m, 2))
    ((n, 2*m), True)
    """
    return (_size(a), _size(b)), sp.true


def outer_tensor(a: Tensor, b: Tensor) -> Tensor:
    """``np.outer(a, b)``: ``out[i, j] = a.ravel()[i] * b.ravel()[j]``.

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> i, j = index_symbol("i"), index_symbol("j")
    >>> outer_tensor(leaf("x", (size_symbol("n"),)), leaf("g", (size_symbol("m"),))).element((i, j))
    g[j]*x[i]
    """
    shape, _ = outer_shape(a.shape, b.shape)
    return _tensor(
        shape,
        lambda idx: kept_product(flat_read(a, idx[0]), flat_read(b, idx[1])),
        sp.And(a.valid, b.valid),
        zero_outside=False,
    )


register(
    Operator(
        name="outer",
        booleans_as_numbers=True,
        family="numpy",
        params=(Param("a", "tensor", required=True), Param("b", "tensor", required=True)),
        definition=outer_tensor,
        shape_rule=outer_shape,
        to_numpy=lambda a, b: f"np.outer({a}, {b})",
        to_latex=lambda a, b: f"{factor_paren(a)} {paren(b)}^{{\\top}}",
        algebra="bilinear",
    )
)


def dot_shape(a, b):
    """``np.dot``'s shape and validity.

    >>> n, m, k = sp.symbols("n m k", integer=True, positive=True)
    >>> dot_shape((n, k), (k, m))
    ((n, m), True)
    """
    a, b = tuple(a), tuple(b)
    if not a or not b:
        return broadcast_shapes(a, b)
    if len(b) == 1:
        return a[:-1], sp.Eq(a[-1], b[0])
    return a[:-1] + b[:-2] + b[-1:], sp.Eq(a[-1], b[-2])


def dot_tensor(a: Tensor, b: Tensor) -> Tensor:
    """``np.dot(a, b)``: a product with a scalar, else a sum over ``a``'s last and ``b``'s second-to-last axis.

    >>> from ..ir import leaf, size_symbol
    >>> n, k = size_symbol("n"), size_symbol("k")
    >>> dot_tensor(leaf("w", (n, k)), leaf("v", (k,))).shape
    (n,)
    """
    shape, valid = dot_shape(a.shape, b.shape)
    if not a.ndim or not b.ndim:
        return elementwise_tensor(sp.Mul, a, b, zero_preserving=True)
    na = a.ndim - 1

    def element(idx):
        k = dummy_index("k")
        ai, rest = idx[:na], idx[na:]
        bi = (k,) if b.ndim == 1 else rest[:-1] + (k,) + rest[-1:]
        return gsum(kept_product(a.at(ai + (k,)), b.at(bi)), (k, 0, a.shape[-1] - 1))

    return _tensor(shape, element, sp.And(valid, a.valid, b.valid), zero_outside=True)


register(
    Operator(
        name="dot",
        family="numpy",
        params=(Param("a", "tensor", required=True), Param("b", "tensor", required=True)),
        definition=dot_tensor,
        shape_rule=dot_shape,
        to_numpy=lambda a, b: f"np.dot({a}, {b})",
        to_latex=lambda a, b: f"{paren(a)} \\cdot {paren(b)}",
        algebra="bilinear",
    )
)


def parse_einsum(subscripts: str, nops: int) -> tuple[list[str], str]:
    """The input label strings and the output labels of an einsum spec (implicit mode sorts).

    >>> parse_einsum("ij,jk", 2)
    (['ij', 'jk'], 'ik')
    """
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise InputError(f"einsum: ellipsis in {subscripts!r} is not supported")
    lhs, arrow, out = spec.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != nops:
        raise InputError(f"einsum: {subscripts!r} names {len(inputs)} operands, {nops} given")
    for labels in [*inputs, out]:
        if not all(c.isalpha() and c.isascii() for c in labels):
            raise InputError(f"einsum: invalid subscript in {subscripts!r}")
    if not arrow:
        counts = {c: "".join(inputs).count(c) for c in set("".join(inputs))}
        out = "".join(sorted(c for c, n in counts.items() if n == 1))
    elif len(set(out)) != len(out) or not set(out) <= set("".join(inputs)):
        raise InputError(f"einsum: output subscripts of {subscripts!r} must be distinct input labels")
    return inputs, out


def _einsum_sizes(inputs, shapes, subscripts):
    # NumPy: a label repeated within one operand (a diagonal) needs equal sizes there;
    # only across operands does a size-1 dimension broadcast
    sizes, valid = {}, []
    for labels, shape in zip(inputs, shapes, strict=True):
        if len(labels) != len(shape):
            raise InputError(f"einsum: operand with subscripts {labels!r} has {len(shape)} dimensions")
        own = {}
        for c, d in zip(labels, shape, strict=False):
            d = sp.sympify(d)
            if c in own:
                valid.append(_equal_sizes(own[c], d))
            else:
                own[c] = d
        for c, d in own.items():
            sizes[c], ok = broadcast_pair(sizes.get(c, sp.S.One), d)
            valid.append(ok)
    return sizes, sp.And(*valid)


def _equal_sizes(a: sp.Expr, b: sp.Expr) -> sp.Boolean:
    # true, false, or the equation (never Eq's own evaluation on assumptions alone)
    if a == b:
        return sp.true
    if a.is_Integer and b.is_Integer:
        return sp.false
    return sp.Eq(a, b)


def einsum_shape(subscripts, operands):
    """``np.einsum``'s result shape (size-1 dimensions broadcast, as NumPy allows).

    >>> n, m = sp.symbols("n m", integer=True, positive=True)
    >>> einsum_shape("ij->ji", ((n, m),))
    ((m, n), True)
    """
    inputs, out = parse_einsum(subscripts, len(operands))
    sizes, valid = _einsum_sizes(inputs, operands, subscripts)
    return tuple(sizes[c] for c in out), valid


def _einsum_index(var, dim, size):
    # a size-1 dimension broadcasts against its label's size, as in np.einsum
    dim = sp.sympify(dim)
    if dim == size:
        return var
    if dim == 1:
        return sp.S.Zero
    return sp.Piecewise((sp.S.Zero, sp.Eq(dim, 1)), (var, True))


def einsum_tensor(subscripts, operands) -> Tensor:
    """``np.einsum(subscripts, *operands)``: a sum of products over the non-output labels.

    >>> from ..ir import leaf, size_symbol
    >>> n, m = size_symbol("n"), size_symbol("m")
    >>> einsum_tensor("ij,i->j", (leaf("w", (n, m)), leaf("g", (n,)))).shape
    (m,)
    """
    inputs, out = parse_einsum(subscripts, len(operands))
    sizes, valid = _einsum_sizes(inputs, [t.shape for t in operands], subscripts)
    summed = sorted(set("".join(inputs)) - set(out))

    def element(idx):
        var = dict(zip(out, idx, strict=False))
        var.update({c: dummy_index(c) for c in summed})
        factors = []
        for labels, t in zip(inputs, operands, strict=False):
            factors.append(
                t.at(tuple(_einsum_index(var[c], d, sizes[c]) for c, d in zip(labels, t.shape, strict=False)))
            )
        return gsum(kept_product(*factors), *((var[c], 0, sizes[c] - 1) for c in summed))

    return _tensor(tuple(sizes[c] for c in out), element, sp.And(valid, *(t.valid for t in operands)))


register(
    Operator(
        name="einsum",
        family="numpy",
        params=(Param("subscripts", "spec", required=True), Param("operands", "tensors")),
        definition=einsum_tensor,
        shape_rule=einsum_shape,
        to_numpy=lambda subscripts, operands: "np.einsum({}, optimize=True)".format(
            ", ".join([repr(subscripts), *operands])
        ),
        to_latex=lambda subscripts, operands: r"\operatorname{{einsum}}_{{\texttt{{{}}}}}\left({}\right)".format(
            subscripts.replace(">", r"\textgreater{}"), ", ".join(operands)
        ),
    )
)


# -- trace, diag --------------------------------------------------------------------------
def _trace_axes(ndim, axis1, axis2):
    if ndim < 2:
        raise InputError("trace: the array must be at least 2-D")
    a1, a2 = normalize_axis(axis1, ndim, "trace", "axis1"), normalize_axis(axis2, ndim, "trace", "axis2")
    if a1 == a2:
        raise InputError("trace: axis1 and axis2 cannot be the same")
    return a1, a2


def trace_shape(a, offset=0, axis1=0, axis2=1):
    """``np.trace``'s shape: the other axes, in order.

    >>> n, m = sp.symbols("n m")
    >>> trace_shape((n, m, 3), axis1=0, axis2=-1)
    ((m,), True)
    """
    a1, a2 = _trace_axes(len(a), axis1, axis2)
    return tuple(d for k, d in enumerate(a) if k not in (a1, a2)), sp.true


def trace_tensor(a: Tensor, offset=0, axis1=0, axis2=1) -> Tensor:
    """``np.trace(a, offset, axis1, axis2)``: ``sum_k a[.., k, .., k + offset, ..]``.

    >>> from ..ir import leaf, size_symbol
    >>> trace_tensor(leaf("w", (size_symbol("n"), size_symbol("m")))).shape
    ()
    """
    a1, a2 = _trace_axes(a.ndim, axis1, axis2)
    shape, _ = trace_shape(a.shape, offset, axis1, axis2)
    offset = sp.sympify(offset)

    def element(idx):
        k = dummy_index("k")
        rest = iter(idx)
        full = tuple(k if d == a1 else k + offset if d == a2 else next(rest) for d in range(a.ndim))
        return gsum(a.at(full), (k, 0, a.shape[a1] - 1))

    return _tensor(shape, element, a.valid, zero_outside=True)


register(
    Operator(
        name="trace",
        booleans_as_numbers=True,
        family="numpy",
        params=(
            Param("a", "tensor", required=True),
            Param("offset", "int", default=0),
            Param("axis1", "int", default=0),
            Param("axis2", "int", default=1),
        ),
        definition=trace_tensor,
        shape_rule=trace_shape,
        to_numpy=lambda a, offset=0, axis1=0, axis2=1: (
            f"np.trace({a}, {option_code(offset)}, {option_code(axis1)}, {option_code(axis2)})"
        ),
        to_latex=lambda a, offset=0, axis1=0, axis2=1: rf"\operatorname{{tr}}\left({a}\right)",
        algebra="linear",
    )
)


def diag_shape(v, k=0):
    """``np.diag``'s shape: a square matrix from a vector, a diagonal from a matrix.

    >>> n, m = sp.symbols("n m", integer=True, positive=True)
    >>> diag_shape((n,), 1), diag_shape((n, n + 2), 1)
    (((n + 1, n + 1), True), ((n,), True))
    """
    k = constant_int(k, "diag", "k")
    if len(v) == 1:
        return (v[0] + abs(k),) * 2, sp.true
    if len(v) != 2:
        raise InputError("diag: input must be 1-D or 2-D")
    n, m = (sp.sympify(d) for d in v)
    length = sp.Min(n, m - k) if k >= 0 else sp.Min(n + k, m)
    return (sp.Max(0, length),), sp.true


def diag_tensor(v: Tensor, k=0) -> Tensor:
    """``np.diag(v, k)``.

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> i = index_symbol("i")
    >>> diag_tensor(leaf("w", (size_symbol("n"), size_symbol("m")))).element((i,))
    w[i, i]
    """
    shape, _ = diag_shape(v.shape, k)
    k = constant_int(k, "diag", "k")
    if v.ndim == 1:

        def element(idx):
            i, j = idx
            return Iverson(sp.Eq(j - i, k)) * v.element((i if k >= 0 else j,))

        return _tensor(shape, element, v.valid)

    def element(idx):
        (i,) = idx
        return v.element((i, i + k) if k >= 0 else (i - k, i))

    return _tensor(shape, element, v.valid)


register(
    Operator(
        name="diag",
        family="numpy",
        params=(Param("v", "tensor", required=True), Param("k", "int", default=0)),
        definition=diag_tensor,
        shape_rule=diag_shape,
        to_numpy=lambda v, k=0: f"np.diag({v}, {option_code(k)})",
        to_latex=lambda v, k=0: rf"\operatorname{{diag}}\left({v}\right)",
        algebra="linear",
    )
)


# -- pad ------------------------------------------------------------------------------------
def pad_widths(pad_width, ndim: int) -> list[tuple[sp.Expr, sp.Expr]]:
    """NumPy's ``pad_width`` forms (``n``, ``(b, a)``, ``((b0, a0), ...)``) as one pair per axis.

    >>> pad_widths(1, 2), pad_widths(((1, 2),), 1), pad_widths((1, 2), 2)
    ([(1, 1), (1, 1)], [(1, 2)], [(1, 2), (1, 2)])
    """
    pw = pad_width
    if not isinstance(pw, tuple | list):
        pairs = [(pw, pw)] * ndim
    elif all(not isinstance(p, tuple | list) for p in pw):
        if len(pw) == 1:
            pairs = [(pw[0], pw[0])] * ndim
        elif len(pw) == 2:
            pairs = [tuple(pw)] * ndim
        else:
            raise InputError(f"pad: pad_width={pad_width} does not fit an array of dimension {ndim}")
    else:
        rows = [tuple(p) if isinstance(p, tuple | list) else (p, p) for p in pw]
        if any(len(r) not in (1, 2) for r in rows):
            raise InputError(f"pad: pad_width={pad_width} is malformed")
        rows = [r * 2 if len(r) == 1 else r for r in rows]
        if len(rows) == 1:
            rows = rows * ndim
        if len(rows) != ndim:
            raise InputError(f"pad: pad_width={pad_width} does not fit an array of dimension {ndim}")
        pairs = rows
    return [(sp.sympify(b), sp.sympify(a)) for b, a in pairs]


def _check_pad_mode(mode, constant_values):
    if mode != "constant":
        raise InputError(f"pad: mode={mode!r} is not supported (only mode='constant' with zeros)")
    if constant_values != 0:
        raise InputError(f"pad: constant_values={constant_values!r} is not supported (only zeros)")


def pad_shape(array, pad_width, mode="constant", constant_values=0):
    """``np.pad``'s shape; valid when every width is non-negative.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> pad_shape((n,), (1, 2))
    ((n + 3,), True)
    """
    _check_pad_mode(mode, constant_values)
    pairs = pad_widths(pad_width, len(array))
    shape = tuple(d + b + a for d, (b, a) in zip(array, pairs, strict=False))
    return shape, sp.And(*(sp.Ge(w, 0) for p in pairs for w in p))


def pad_tensor(array: Tensor, pad_width, mode="constant", constant_values=0) -> Tensor:
    """``np.pad(array, pad_width)`` with zeros: ``out[i] = array[i - before]``.

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> pad_tensor(leaf("x", (size_symbol("n"),)), 2).element((index_symbol("i"),))
    x[i - 2]
    """
    shape, valid = pad_shape(array.shape, pad_width, mode, constant_values)
    pairs = pad_widths(pad_width, array.ndim)
    return _tensor(
        shape,
        lambda idx: array.at(tuple(i - b for i, (b, _) in zip(idx, pairs, strict=False))),
        sp.And(valid, array.valid),
        zero_outside=False,
    )


register(
    Operator(
        name="pad",
        family="numpy",
        params=(
            Param("array", "tensor", required=True),
            Param("pad_width", "ints", required=True),
            Param("mode", "str", default="constant", choices=("constant",)),
            Param("constant_values", "number", default=0),
        ),
        definition=pad_tensor,
        shape_rule=pad_shape,
        to_numpy=lambda array, pad_width, mode="constant", constant_values=0: (
            f"np.pad({array}, {option_code(pad_width)})"
        ),
        to_latex=lambda array, pad_width, mode="constant", constant_values=0: (
            rf"\operatorname{{pad}}_{{{option_latex(pad_width)}}}\left({array}\right)"
        ),
        algebra="linear",
    )
)


# -- constructors -------------------------------------------------------------------------
def shape_arg(shape, op: str) -> tuple[sp.Expr, ...]:
    """A shape argument (an int or a tuple of size expressions) as a tuple.

    >>> shape_arg(3, "zeros"), shape_arg((2, sp.Symbol("n")), "ones")
    ((3,), (2, n))
    """
    dims = shape if isinstance(shape, tuple | list) else (shape,)
    dims = tuple(sp.sympify(d) for d in dims)
    if any(d.is_negative for d in dims):
        raise InputError(f"{op}: negative dimensions are not allowed in shape={shape}")
    return dims


def _filled(value, zero_outside):
    value = sp.sympify(value)
    return lambda dims, valid=sp.true: _tensor(dims, lambda idx: value, valid, zero_outside=zero_outside)


_zeros, _ones = _filled(0, True), _filled(1, False)


def _fill_valid(dims):
    return sp.And(*(sp.Ge(d, 0) for d in dims))


for _name, _make in (("zeros", _zeros), ("ones", _ones)):
    register(
        Operator(
            name=_name,
            family="numpy",
            params=(Param("shape", "ints", required=True),),
            definition=lambda shape, _make=_make, _name=_name: _make(
                shape_arg(shape, _name), _fill_valid(shape_arg(shape, _name))
            ),
            shape_rule=lambda shape, _name=_name: (shape_arg(shape, _name), _fill_valid(shape_arg(shape, _name))),
            to_numpy=lambda shape, _name=_name: f"np.{_name}({option_code(shape)})",
            to_latex=lambda shape, _name=_name: r"\mathbf{{{}}}_{{{}}}".format(
                "0" if _name == "zeros" else "1", r" \times ".join(sp.latex(d) for d in shape_arg(shape, _name))
            ),
        )
    )
    register(
        Operator(
            name=f"{_name}_like",
            family="numpy",
            params=(Param("a", "tensor", required=True),),
            definition=lambda a, _make=_make: _make(a.shape, a.valid),
            shape_rule=lambda a: (tuple(a), sp.true),
            to_numpy=lambda a, _name=_name: f"np.{_name}_like({a})",
            to_latex=lambda a, _name=_name: r"\mathbf{%s}" % ("0" if _name == "zeros" else "1"),
        )
    )


def eye_shape(N, M=None, k=0):
    """``np.eye``'s shape.

    >>> eye_shape(3, 4)
    ((3, 4), True)
    """
    n = sp.sympify(N)
    m = n if M is None else sp.sympify(M)
    return (n, m), sp.And(sp.Ge(n, 0), sp.Ge(m, 0))


def eye_tensor(N, M=None, k=0) -> Tensor:
    """``np.eye(N, M, k)``: ones on the ``k``-th diagonal.

    >>> from ..ir import index_symbol
    >>> i, j = index_symbol("i"), index_symbol("j")
    >>> eye_tensor(3, k=1).element((i, j))
    Iverson(Eq(j, i + 1))
    """
    shape, valid = eye_shape(N, M, k)
    k = sp.sympify(k)
    return _tensor(shape, lambda idx: Iverson(sp.Eq(idx[1], idx[0] + k)), valid)


register(
    Operator(
        name="eye",
        family="numpy",
        params=(Param("N", "int", required=True), Param("M", "int"), Param("k", "int", default=0)),
        definition=eye_tensor,
        shape_rule=eye_shape,
        to_numpy=lambda N, M=None, k=0: f"np.eye({option_code(N)}, {option_code(M)}, {option_code(k)})",
        to_latex=lambda N, M=None, k=0: rf"I_{{{sp.latex(sp.sympify(N))}}}",
    )
)


# -- basic slicing ------------------------------------------------------------------------
def _piecewise_sign(b, negative, nonnegative):
    if b.is_negative:
        return negative
    if b.is_nonnegative:
        return nonnegative
    return sp.Piecewise((negative, b < 0), (nonnegative, True))


def slice_bounds(lo, hi, step, n) -> tuple[sp.Expr, sp.Expr, int]:
    """NumPy's normalised ``start``, ``stop`` for ``lo:hi:step`` on an axis of length ``n``.

    Negative bounds count from the end; bounds are then clipped to the axis as NumPy does.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> slice_bounds(None, -1, 1, n)
    (0, n - 1, 1)
    """
    step = 1 if step is None else step
    if not sp.sympify(step).is_Integer or step == 0:
        raise InputError(f"getitem: slice step {step} must be a nonzero integer constant")
    step = int(step)
    n = sp.sympify(n)
    if step > 0:
        clip_lo, clip_hi, start_default, stop_default = sp.S.Zero, n, sp.S.Zero, n
    else:
        clip_lo, clip_hi, start_default, stop_default = sp.S.NegativeOne, n - 1, n - 1, sp.S.NegativeOne

    def norm(b, default):
        if b is None:
            return default
        b = sp.sympify(b)
        return _piecewise_sign(b, sp.Max(b + n, clip_lo), sp.Min(b, clip_hi))

    return norm(lo, start_default), norm(hi, stop_default), step


def slice_length(start, stop, step: int) -> sp.Expr:
    """The number of elements of ``range(start, stop, step)``.

    >>> slice_length(sp.Integer(1), sp.Integer(6), 2)
    3
    """
    span = sp.ceiling(sp.Rational(1, step) * (stop - start)) if abs(step) != 1 else (stop - start) * step
    if (span >= 0) == sp.true:
        return span
    return sp.Max(0, span)


#: key entries of NumPy's basic indexing besides integers and slices: a new axis of length 1
#: (``None``, ``np.newaxis``) and ``...`` (as many full slices as the other entries leave axes)
NEWAXIS, ELLIPSIS = "newaxis", "..."


def _is_marker(entry, marker: str) -> bool:
    return isinstance(entry, str) and entry == marker


def _key_entries(key, ndim):
    """The key with ``...`` (or the missing trailing axes) replaced by full slices.

    >>> _key_entries((ELLIPSIS, 0), 3)
    ((None, None, None), (None, None, None), 0)
    """
    key = tuple(key) if isinstance(key, tuple | list) else (key,)
    for e in key:
        if e is None or e is Ellipsis or (isinstance(e, str) and e not in (NEWAXIS, ELLIPSIS)):
            raise InputError(f"getitem: index {e!r} is not supported (integers, lo:hi:step slices, None, ...)")
    ellipses = [k for k, e in enumerate(key) if _is_marker(e, ELLIPSIS)]
    if len(ellipses) > 1:
        raise InputError("getitem: an index can only have a single ellipsis ('...')")
    consumed = sum(1 for e in key if not isinstance(e, str))
    if consumed > ndim:
        raise InputError(f"getitem: too many indices ({consumed}) for an array of dimension {ndim}")
    full = ((None, None, None),) * (ndim - consumed)
    if ellipses:
        return key[: ellipses[0]] + full + key[ellipses[0] + 1 :]
    return key + full


def _is_slice(entry) -> bool:
    return isinstance(entry, tuple | list)


def getitem_plan(shape, key):
    """Per output or indexed axis: ``("slice", start, step)``, ``("index", position)`` or
    ``("new",)``; the shape and validity."""
    plan, out, valid = [], [], []
    axes = iter(shape)
    for e in _key_entries(key, len(shape)):
        if _is_marker(e, NEWAXIS):
            plan.append(("new",))
            out.append(sp.S.One)
            continue
        n = sp.sympify(next(axes))
        if _is_slice(e):
            if len(e) != 3:
                raise InputError(f"getitem: slice {e} must be (lo, hi, step)")
            start, stop, step = slice_bounds(*e, n)
            plan.append(("slice", start, step))
            out.append(slice_length(start, stop, step))
        else:
            e = sp.sympify(e)
            if not e.is_integer:
                raise InputError(f"getitem: index {e} is not an integer expression")
            plan.append(("index", _piecewise_sign(e, e + n, e)))
            valid.append(sp.And(sp.Ge(e, -n), sp.Lt(e, n)))
    return plan, tuple(out), sp.And(*valid)


def getitem_shape(x, key):
    """The shape of NumPy basic indexing ``x[key]``.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> getitem_shape((n, 5), ((1, None, None), -1))
    ((n - 1,), True)
    """
    _, shape, valid = getitem_plan(x, key)
    return shape, valid


def getitem_tensor(x: Tensor, key) -> Tensor:
    """``x[key]`` for integer indices, ``(lo, hi, step)`` slices, new axes and ``...``.

    >>> from ..ir import leaf, size_symbol, index_symbol
    >>> t = getitem_tensor(leaf("x", (size_symbol("n"),)), ((None, None, -1),))
    >>> t.element((index_symbol("i"),))
    x[-i + n - 1]
    """
    plan, shape, valid = getitem_plan(x.shape, key)

    def element(idx):
        it = iter(idx)
        src = []
        for step in plan:
            if step[0] == "new":
                next(it)  # an axis of length 1 that reads nothing
            elif step[0] == "slice":
                src.append(step[1] + step[2] * next(it))
            else:
                src.append(step[1])
        return x.at(tuple(src))

    return _tensor(shape, element, sp.And(valid, x.valid))


def _key_code(key, render=option_code, newaxis="None", ellipsis="...") -> str:
    parts = []
    for e in key if isinstance(key, tuple | list) else (key,):
        if _is_marker(e, NEWAXIS) or _is_marker(e, ELLIPSIS):
            parts.append(newaxis if e == NEWAXIS else ellipsis)
        elif _is_slice(e):
            lo, hi, step = (("" if b is None else render(b)) for b in e)
            parts.append(f"{lo}:{hi}" + (f":{step}" if step else ""))
        else:
            parts.append(render(e))
    return ", ".join(parts)


def _key_latex(key) -> str:
    return _key_code(key, lambda v: sp.latex(sp.sympify(v)), r"\mathrm{None}", r"\ldots")


register(
    Operator(
        name="getitem",
        booleans_as_numbers=True,
        family="numpy",
        params=(Param("x", "tensor", required=True), Param("key", "ints", required=True)),
        definition=getitem_tensor,
        shape_rule=getitem_shape,
        to_numpy=lambda x, key: f"({x})[{_key_code(key)}]",
        to_latex=lambda x, key: rf"{paren(x)}\left[{_key_latex(key)}\right]",
        by_name=False,
    )
)
