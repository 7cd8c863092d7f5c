"""Proved closed forms -> a standalone, checked NumPy module.

:func:`emit_numpy` writes ``forward`` and one ``grad_<wrt>`` per differentiable input.
The code for a gradient comes from, in order: the claim given for that input, the
layer's known claims that prove, or the derived index-form gradient itself (lowered to
broadcast NumPy over index ranges; no Python loop over tensor elements). A given claim
that is not proved is refused with its verdict (:class:`ClaimNotProved`).

Before any source is returned, every emitted function is compiled in a private
namespace and compared in float64 with the form it came from, evaluated element by
element by :mod:`symderive.concrete` at several small sizes that satisfy the layer's
assumptions (dimensions of 1 and kernels as large as the input included). A mismatch is
an :class:`~symderive.errors.InternalError`, never a module.

Emitted functions follow LANGUAGE.md's calling convention: keyword arguments named
after the layer's inputs and ``g`` (a function declares only the ones it uses), and a
result of the input's shape.
"""

from __future__ import annotations

import ast
import inspect
import io
import itertools
import subprocess
import textwrap
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from ..core import tree as T
from ..core.ir import GSum, Tensor
from ..core.ops import NUMPY_HELPERS, OPERATORS
from ..decide.concrete import EvaluationError, Evaluator, concrete_shape, evaluate, is_valid_at
from ..decide.verdict import ERROR, PROVED, REFUTED, Verdict
from ..errors import InputError, InternalError
from ..escape import identifier_problem, python_docstring
from .stable import stable_form

#: tolerances of the pre-emission check (float64 against exact-ish element evaluation)
CHECK_RTOL, CHECK_ATOL = 1e-9, 1e-11


class CodegenRefusal(Exception):
    """symderive will not emit code for an input; ``exit_status`` is the CLI's status."""

    exit_status = 3


class ClaimNotProved(CodegenRefusal):
    """A given claim is not proved; ``verdict`` says why (exit status as ``prove``'s).

    >>> ClaimNotProved(Verdict("refuted", wrt="x", claim="w")).exit_status
    1
    """

    def __init__(self, verdict: Verdict):
        self.verdict = verdict
        self.exit_status = {REFUTED: 1, ERROR: 2}.get(verdict.verdict, 3)
        why = verdict.reason or verdict.detail
        super().__init__(
            f"refusing to emit code for d{verdict.wrt} from claim {verdict.claim!r}: "
            f"it is {verdict.verdict}, not proved" + (f" ({why})" if why else "")
        )


class NotVectorisable(CodegenRefusal):
    """The derived index form has a construct this module cannot lower to NumPy."""


# -- what one emitted function is ------------------------------------------------------------


@dataclass
class Function:
    """One emitted function: its name, arguments, body lines and the form it must equal."""

    name: str
    args: tuple[str, ...]
    body: list[str]
    doc: str
    expected: Tensor
    helpers: set[str] = field(default_factory=set)

    def source(self) -> str:
        """The function's source text."""
        sig = f"*, {', '.join(self.args)}" if self.args else ""
        doc = _indent_doc(self.doc)
        lines = [f"def {self.name}({sig}):", doc, *("    " + tidy_statement(line) for line in self.body)]
        return "\n".join(lines) + "\n"


def tidy_statement(line: str) -> str:
    """A generated statement as a formatter would write it: no redundant parentheses,
    double-quoted strings.

    >>> tidy_statement("return (f(x, 'valid') + b)")
    'return f(x, "valid") + b'
    >>> tidy_statement("O = (g.shape[1])  # noqa: E741")
    'O = g.shape[1]  # noqa: E741'
    """
    comments = [t.string for t in tokenize.generate_tokens(io.StringIO(line).readline) if t.type == tokenize.COMMENT]
    text = ast.unparse(ast.parse(line))
    if comments:
        # ast drops comments; a trailing one (a noqa) is kept
        return tidy_statement(text) + "  " + comments[-1]
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if (
            tok.type == tokenize.STRING
            and tok.string.startswith("'")
            and '"' not in tok.string
            and "\\" not in tok.string
        ):
            out.append((tok.type, '"' + tok.string[1:-1] + '"'))
        else:
            out.append((tok.type, tok.string))
    return _untokenize(text, out)


def _untokenize(text: str, tokens) -> str:
    # rebuild with the original spacing: replace string tokens in place
    result, pos = [], 0
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        start = _offset(text, tok.start)
        end = _offset(text, tok.end)
        result.append(text[pos:start])
        new = tokens.pop(0)[1]
        result.append(new)
        pos = end
    result.append(text[pos:])
    return "".join(result)


def _offset(text: str, rowcol) -> int:
    row, col = rowcol
    lines = text.split("\n")
    return sum(len(ln) + 1 for ln in lines[: row - 1]) + col


def format_source(source: str) -> str:
    """The module text through ``ruff format`` when ruff is installed (else unchanged)."""
    try:
        from ruff.__main__ import find_ruff_bin

        ruff = find_ruff_bin()
    except (ImportError, FileNotFoundError):
        return source
    done = subprocess.run(
        [ruff, "format", "--line-length", "120", "--isolated", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 and done.stdout else source


#: width of a docstring line's text, so that the emitted module keeps ruff's 120 columns
DOC_WIDTH = 112


def wrap_doc(doc: str, width: int = DOC_WIDTH) -> str:
    """A docstring with each long line wrapped at spaces, continuation lines indented.

    >>> wrap_doc("dL/dx = a + b + c, proved", width=12).split(chr(10))
    ['dL/dx = a +', '    b + c,', '    proved']
    """
    out = []
    for line in doc.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        out += textwrap.wrap(
            line, width=width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
        )
    return "\n".join(out)


def _indent_doc(doc: str) -> str:
    # the docstring is an escaped literal: a claim or a layer's text in it is never code
    lines = wrap_doc(doc.strip("\n")).split("\n")
    if len(lines) == 1:
        return "    " + python_docstring(lines[0])
    body = "\n".join(("    " + ln) if ln else "" for ln in lines[1:])
    return "    " + python_docstring(f"{lines[0]}\n{body}\n    ")


# -- public entry points -----------------------------------------------------------------------


def emit_numpy(
    layer,
    claims: Mapping[str, str] | None = None,
    check: bool = True,
    verdicts: Mapping[str, Verdict] | None = None,
    prove=None,
) -> str:
    """The source of a standalone NumPy module for a layer's forward pass and gradients.

    ``claims`` maps an input name to a claim for its gradient; it must prove. Other
    inputs use the layer's known claims that prove, else the derived index form.
    ``verdicts`` (input name -> Verdict) are verdicts a caller already has for ``claims``
    (the command line proves each claim under its timeout first): a proved verdict of this
    layer, input and claim is not proved again; any other is ignored. ``prove`` is the
    prover to ask (default :func:`symderive.decide.pose.prove`).

    >>> src = emit_numpy("linear", claims={"x": "transpose(w) @ g"})
    >>> "def grad_x(*, w, g):" in src
    True
    """
    layer = _as_layer(layer)
    return _module_of(layer, emitted_functions(layer, claims, verdicts, prove), check)


def emitted_functions(
    layer, claims: Mapping[str, str] | None = None, verdicts: Mapping[str, Verdict] | None = None, prove=None
) -> list[Function]:
    """The functions of an emitted module: ``forward``, then ``grad_<input>`` per differentiable input."""
    if claims is not None and not isinstance(claims, Mapping):
        raise TypeError(f"claims maps input names to claim strings, got {type(claims).__name__}")
    claims = dict(claims or {})
    unknown = set(claims) - set(layer.differentiable)
    if unknown:
        raise InputError(
            f"no differentiable input named {sorted(unknown)[0]!r} in layer {layer.name!r}", where="--claim"
        )
    verdicts = dict(verdicts or {})
    functions = [forward_function(layer)]
    for wrt in layer.differentiable:
        functions.append(gradient_function(layer, wrt, claims.get(wrt), verdicts.get(wrt), prove))
    return functions


def _module_of(layer, functions: list[Function], check: bool) -> str:
    source = format_source(module_source(layer, functions))
    if check:
        check_functions(layer, functions, source)
    return source


def emit_tests(
    layer, module_name: str, claims: Mapping[str, str] | None = None, sizes_count: int = 3, prove=None
) -> str:
    """Pytest tests for an emitted module, importing only NumPy and that module.

    Expected values are computed now by symderive's exact evaluation of the forms the
    functions came from, at a few small sizes, with inputs from a fixed seed.

    >>> "def test_grad_x" in emit_tests("linear", "linear_grads")
    True
    """
    _require_module_name(module_name)
    layer = _as_layer(layer)
    return _tests_of(layer, module_name, emitted_functions(layer, claims, None, prove), sizes_count)


def _tests_of(layer, module_name: str, functions: list[Function], sizes_count: int = 3) -> str:
    cases = []
    for k, sizes in enumerate(check_sizes(layer)[:sizes_count]):
        values = _exact_values(layer, sizes, np.random.default_rng(1000 + k))
        floats = {n: np.asarray(v.astype(float)) for n, v in values.items()}
        expected = {}
        for fn in functions:
            expected[fn.name] = _exact_expected(fn.expected, sizes, values, floats)
        cases.append((sizes, floats, expected))
    return format_source(source_of_tests(module_name, functions, cases))


# -- building the functions --------------------------------------------------------------------


def _as_layer(layer):
    from ..model.layer import as_layer, require_concrete

    # a name or path is loaded; anything but a Layer is a TypeError that says what a layer is;
    # an abstract function (functions = ["f"]) has no code
    return require_concrete(as_layer(layer), "code generation")


def _shape_text(shape, layer=None) -> str:
    return "[" + ", ".join(str(_readable(d, layer)) for d in shape) + "]"


def settle_sizes(expr, layer):
    """An expression with the conditions that the layer's size assumptions decide replaced by True.

    Emitted functions are only for sizes satisfying the assumptions, so ``[H >= kh]``
    is 1 there and the piecewise branches it selects are the only ones left.
    """
    facts = {c.canonical: sp.true for c in layer.size_assumptions() if isinstance(c, sp.Rel)}
    if not facts:
        return expr
    return sp.sympify(expr).replace(lambda e: isinstance(e, sp.Rel), lambda r: facts.get(r.canonical, r))


def _readable(expr, layer):
    """A size expression with piecewise branches settled by the layer's size assumptions."""
    expr = sp.sympify(expr)
    if layer is None or not expr.has(sp.Piecewise):
        return expr
    return sp.simplify(settle_sizes(expr, layer))


def _assumption_text(layer, extra=()) -> str:
    texts = [a.text for a in layer.assumptions] + [t for t in extra if t not in {a.text for a in layer.assumptions}]
    return ", ".join(texts) if texts else "none"


def _shapes_line(layer, args) -> str:
    parts = []
    for a in args:
        shape = layer.forward.shape if a == "g" else layer.inputs.get(a)
        if shape is not None:
            parts.append(f"{a} {_shape_text(shape, layer)}")
    return ", ".join(parts)


def forward_function(layer) -> Function:
    """The emitted ``forward``: the layer's output from its inputs."""
    rewrites = ()
    if layer.forward_tree is not None:
        tree, rewrites = stable_form(layer, layer.forward_tree)
        code, args, helpers = closed_form_code(layer, tree)
        args, body = _sized_body(layer, args, _needed_sizes(tree), code, layer.forward.shape, None)
    else:
        lowering = IndexLowering(layer)
        body, args, helpers = lowering.function_body(layer.forward_index, layer.output_indices, layer.forward.shape)
    doc = (
        f"{layer.output} = {layer.forward_text or layer.output}, the forward pass of layer {layer.name}.\n\n"
        f"Shapes: {_shapes_line(layer, args)} -> {layer.output} {_shape_text(layer.forward.shape, layer)}.\n"
        f"Assumes: {_assumption_text(layer)}.{_stable_note(rewrites)}"
    )
    return Function("forward", args, body, doc, layer.forward, helpers)


def gradient_function(layer, wrt: str, claim: str | None, verdict: Verdict | None = None, prove=None) -> Function:
    """The emitted ``grad_<wrt>``, from a proved claim or the derived index form.

    ``verdict``: a verdict already obtained for ``claim``, used if it proves that claim;
    ``prove``: the prover to ask (default :func:`symderive.decide.pose.prove`).
    """
    chosen = _proved_claim(layer, wrt, claim, verdict, prove)
    if chosen is not None:
        return _claim_function(layer, wrt, *chosen)
    return _derived_function(layer, wrt)


def _proved_claim(layer, wrt: str, claim: str | None, verdict: Verdict | None = None, prove=None):
    """(claim text, verdict) for the claim to emit, or None to use the derivation."""
    if prove is None:
        from ..decide.pose import prove

    if claim is not None:
        if not _proves(verdict, layer, wrt, claim):
            verdict = prove(layer, wrt, claim)
        if verdict.verdict != PROVED:
            raise ClaimNotProved(verdict)
        return claim, verdict
    for known in known_claims(layer, wrt):
        verdict = prove(layer, wrt, known)
        if verdict.verdict == PROVED:
            return known, verdict
    return None


def _proves(verdict: Verdict | None, layer, wrt: str, claim: str) -> bool:
    # a verdict on this very claim under the layer's own assumptions: no more, no fewer
    return (
        verdict is not None
        and verdict.verdict == PROVED
        and (verdict.layer, verdict.wrt, verdict.claim) == (layer.name, wrt, claim)
        and set(verdict.assumptions) <= {a.text for a in layer.assumptions}
    )


def known_claims(layer, wrt: str) -> list[str]:
    """The layer's known claims for ``wrt`` that codegen may emit, the one to try first first.

    Only claims expected to be proved with the layer's own assumptions (code must hold at every
    size the layer allows, so a claim needing an extra assumption is never emitted unasked).
    A closed form comes before an index form (whole-array NumPy and BLAS calls rather than
    gathers), then the smaller expression (fewer passes over arrays), then the layer file's order.

    >>> known_claims("log_softmax_nll", "s")
    ['(softmax(s, axis=1) - t) / N', '(softmax(s, axis=1) * sum(t, axis=1, keepdims=True) - t) / N']
    """
    from ..core.parse import parse_claim

    layer = _as_layer(layer)
    texts = [c.claim for c in layer.claims if c.wrt == wrt and c.expect == PROVED and not c.assume]

    def cost(text: str) -> tuple[int, int]:
        tree = parse_claim(text, layer, wrt).tree
        return (1, 0) if tree is None else (0, sum(1 for _ in _walk(tree)))

    return sorted(texts, key=cost)


def _claim_function(layer, wrt: str, text: str, verdict: Verdict) -> Function:
    from ..core.parse import claim_tensor, parse_claim

    parsed = parse_claim(text, layer, wrt)
    expected = claim_tensor(parsed, layer)
    target = layer.inputs[wrt]
    rewrites = ()
    if parsed.tree is not None:
        tree, rewrites = stable_form(layer, parsed.tree)
        code, args, helpers = closed_form_code(layer, tree)
        built_shape = T.build(parsed.tree, layer.scope()).shape
        if _shape_matches(layer, built_shape, target):
            built_shape = target
        if built_shape != target:
            args = _ordered_args(layer, set(args) | {wrt})
        args, body = _sized_body(
            layer, args, _needed_sizes(tree), code, target, None if built_shape == target else wrt, prefer=wrt
        )
    else:
        lowering = IndexLowering(layer)
        body, args, helpers = lowering.function_body(parsed.body, tuple(parsed.index), target, prefer=wrt)
    assumptions = verdict.assumptions or tuple(a.text for a in layer.assumptions)
    doc = (
        f"dL/d{wrt} = {text}, proved by symderive for layer {layer.name}.\n\n"
        f"Shapes: {_shapes_line(layer, args)} -> d{wrt} {_shape_text(target, layer)}.\n"
        f"Assumes: {', '.join(assumptions) if assumptions else 'none'}.{_stable_note(rewrites)}"
    )
    return Function(f"grad_{wrt}", args, body, doc, _with_shape(expected, target), helpers)


def _stable_note(rewrites) -> str:
    """The docstring's sentence on the stable spellings used (each proved equal first), or ""."""
    if not rewrites:
        return ""
    rules = ", ".join(dict.fromkeys(r.text for r in rewrites))
    return f"\nComputed stably: {rules} (each proved equal to the form as written)."


def _derived_function(layer, wrt: str) -> Function:
    from ..calculus.present import present

    derivation = present(layer, wrt)
    target = layer.inputs[wrt]
    lowering = IndexLowering(layer)
    body, args, helpers = lowering.function_body(derivation.gradient, tuple(derivation.index), target, prefer=wrt)
    index = ", ".join(str(i) for i in derivation.index)
    lhs = f"d{wrt}[{index}]" if index else f"d{wrt}"
    doc = (
        f"dL/d{wrt}, the derived index form of layer {layer.name} (no proved closed form).\n\n"
        f"{lhs} = {sp.sstr(derivation.gradient)}\n\n"
        f"Shapes: {_shapes_line(layer, args)} -> d{wrt} {_shape_text(target, layer)}.\n"
        f"Assumes: {_assumption_text(layer)}."
    )
    expected = index_tensor(derivation.gradient, tuple(derivation.index), target)
    return Function(f"grad_{wrt}", args, body, doc, expected, helpers)


#: every size is this in the gather's memory figure, except a size bounded above by another (a kernel)
TYPICAL_SIZE, TYPICAL_BOUNDED = 64, 3


def gather_bytes(layer, wrt: str) -> sp.Expr | None:
    """Bytes of the largest array the derived index form's code of ``wrt`` builds, or None when
    that code does not gather or builds nothing larger than its result (no sum: it then costs
    about what a closed form costs).

    The lowering gives every free index and every summation variable an axis, so a sum at
    nesting depth d is an array of the output's extents times the ranges of its d sums
    (float64: 8 bytes an element).

    >>> gather_bytes("linear", "x")
    8*m*n
    >>> gather_bytes("conv2d", "x")
    8*H*W*(H - kh + 1)*(W - kw + 1)
    """
    from ..calculus.present import present

    layer = _as_layer(layer)
    if "_gather" not in _derived_function(layer, wrt).helpers:
        return None
    derivation = present(layer, wrt)
    outer = sp.Mul(*(sp.sympify(d) for d in layer.inputs[wrt]))
    largest = _largest_extent(derivation.gradient, outer, layer)
    return None if largest == outer else 8 * sp.factor(largest)


def _largest_extent(expr, outer, layer):
    # outer * (ranges of the enclosing sums), largest over every sum in expr at typical sizes
    if isinstance(expr, (sp.Sum, GSum)):
        outer = outer * sp.Mul(*(sp.simplify(settle_sizes(hi - lo + 1, layer)) for _, lo, hi in expr.limits))
        expr = expr.function
    best = outer
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Sum, GSum)):
            inner = _largest_extent(node, outer, layer)
            if _at_typical(inner, layer) > _at_typical(best, layer):
                best = inner
    return best


def typical_sizes(layer) -> dict:
    """Sizes for a memory figure: every size TYPICAL_SIZE, one bounded above by another TYPICAL_BOUNDED.

    >>> sorted((str(k), v) for k, v in typical_sizes("conv2d").items())
    [('H', 64), ('W', 64), ('kh', 3), ('kw', 3)]
    """
    layer = _as_layer(layer)
    bounded = {
        c.lhs
        for c in layer.size_assumptions()
        if isinstance(c, sp.Le) and isinstance(c.lhs, sp.Symbol) and c.rhs.free_symbols
    }
    return {s: (TYPICAL_BOUNDED if s in bounded else TYPICAL_SIZE) for s in layer.sizes}


def _at_typical(expr, layer) -> float:
    value = sp.sympify(expr).subs(typical_sizes(layer))
    return float(value) if value.is_number else 0.0


def index_tensor(expr: sp.Expr, index: tuple, shape) -> Tensor:
    """The tensor whose element at ``idx`` is ``expr`` with ``index`` replaced by ``idx``.

    >>> i = sp.Symbol("i", integer=True)
    >>> index_tensor(2 * i, (i,), (sp.Integer(3),)).element((sp.Integer(1),))
    2
    """
    index = tuple(index)

    def element(idx):
        return expr.xreplace(dict(zip(index, idx, strict=True)))

    return Tensor(shape=tuple(shape), element=element, zero_outside=True)


def _shape_matches(layer, shape, target) -> bool:
    """Whether a (possibly piecewise) symbolic shape equals the target at the check sizes."""
    if tuple(shape) == tuple(target):
        return True
    if len(shape) != len(target):
        return False
    # every accepted size up to the default limit, not only the four check sizes: a shape
    # that differs for one parity of H + 2 - kh must not be taken for the input's shape
    for sizes, _ in valid_sizes(layer):
        ev = Evaluator(sizes, {})
        try:
            if any(ev.value(sp.sympify(a)) != ev.value(sp.sympify(b)) for a, b in zip(shape, target, strict=True)):
                return False
        except EvaluationError:
            return False
    return True


def _with_shape(tensor: Tensor, shape) -> Tensor:
    """A broadcastable claim tensor seen at the input's shape (NumPy broadcasting)."""
    shape = tuple(shape)
    if tuple(tensor.shape) == shape or len(tensor.shape) == len(shape):
        return tensor
    from ..core.ops.elementwise import broadcast_index

    def element(idx):
        return tensor.at(broadcast_index(idx, tensor.shape, shape))

    return Tensor(shape=shape, element=element, zero_outside=True, valid=tensor.valid)


def _walk(node):
    yield node
    if isinstance(node, T.Element):
        yield from _walk(node.node)
    elif isinstance(node, T.Call):
        for _, value in node.args:
            if isinstance(value, T.Node):
                yield from _walk(value)
            elif isinstance(value, tuple):
                for v in value:
                    if isinstance(v, T.Node):
                        yield from _walk(v)


def _ordered_args(layer, names) -> tuple[str, ...]:
    order = list(layer.inputs) + ["g"]
    return tuple(n for n in order if n in names)


def closed_form_code(layer, node) -> tuple[str, tuple[str, ...], set[str]]:
    """(NumPy expression, the arguments it reads, the helpers it calls) for a closed form."""
    names, helpers = set(), set()
    output_used = False
    for n in _walk(node):
        if isinstance(n, T.Ref):
            if n.name == layer.output:
                output_used = True
            elif n.name in layer.inputs or n.name == "g":
                names.add(n.name)
        elif isinstance(n, T.Call):
            helpers.update(OPERATORS[n.op].numpy_helpers)
        elif isinstance(n, T.Scalar):
            raise NotVectorisable("an index-form value inside a closed form is not lowered to NumPy")
    statements = InPlaceLowering(layer)
    code = statements.code(node)
    if output_used:
        if layer.forward_tree is None:
            raise NotVectorisable(f"the claim uses {layer.output}, whose forward pass is in index form")
        forward, _ = stable_form(layer, layer.forward_tree)
        _, fwd_args, fwd_helpers = closed_form_code(layer, forward)
        names |= set(fwd_args)
        helpers |= fwd_helpers
        *fwd_lines, fwd_code = statements.code(forward).split("\n")
        code = "\n".join([*fwd_lines, f"{_output_var(layer)} = {fwd_code}", code])
    return code, _ordered_args(layer, names), helpers | statements.helpers


_INTO = '''def _into(a, b):
    """a as the out= of a ufunc of a and b (a is an array this module made) when NumPy's result has a's dtype."""
    # an array b of a wider dtype (float64 t against float32 s) promotes: the result is then a new array
    return a if type(b) is np.ndarray and (b.dtype == a.dtype or np.result_type(a, b) == a.dtype) else None
'''


class InPlaceLowering:
    """A closed form as NumPy statements that write elementwise results into arrays the code made.

    ``(softmax(s, axis=1) - t) / N`` allocates and passes over an [N, K] array three times
    when written as one expression; here the subtraction and the division (a multiply by
    the reciprocal of a size) reuse the softmax's own array. A result goes into an operand
    only when it has that operand's shape (decided now, from the symbolic shapes) and its
    dtype (decided at run time by ``_into`` unless the other operand is a Python number,
    which NumPy never lets widen a floating array), so no result changes.

    >>> from symderive.layer import load_layer
    >>> from symderive.core.parse import parse_claim
    >>> layer = load_layer("log_softmax_nll")
    >>> print(InPlaceLowering(layer).code(parse_claim("(softmax(s, axis=1) - t) / N", layer, "s").tree))
    buf = _softmax(s, axis=1)
    buf = np.subtract(buf, t, out=_into(buf, t))
    np.multiply(buf, 1 / N, out=buf)
    """

    def __init__(self, layer):
        self.layer = layer
        self.lines: list[str] = []
        self.helpers: set[str] = set()
        self.count = 0
        self.taken = set(layer.inputs) | set(map(str, layer.sizes)) | {layer.output, "g", "np"}

    def code(self, node) -> str:
        """Statements, then the expression of the result (lines of text)."""
        self.lines = []
        text, _ = self.lower(node)
        if self.lines and self.lines[-1].startswith(f"{text} = "):
            # the last update is the result itself: return it rather than rebind and return the name
            text = self.lines.pop()[len(text) + 3 :]
        return "\n".join([*self.lines, text])

    def lower(self, node) -> tuple[str, bool]:
        """(code, whether it names an array of our own that may be overwritten)."""
        if not isinstance(node, T.Call):
            return T.to_numpy(node), False
        op = OPERATORS[node.op]
        if op.fresh_array:
            name = self._fresh()
            self.lines.append(f"{name} = {self._call(node)}")
            return name, True
        if node.op == "sum" and self._is_product_sum(node):
            return self._product_sum(node)
        if op.ufunc and len(op.params) == 2:
            return self._binary(node)
        if op.ufunc and len(op.params) == 1:
            x, fresh = self.lower(node.arg("x"))
            x = T.counted(node.op, node.arg("x"), x)
            if fresh:
                self.lines.append(f"{x} = np.{node.op}({x}, out={x})")
                return x, True
            return OPERATORS[node.op].to_numpy(x=x), False
        return self._call(node), False

    def _call(self, node) -> str:
        return OPERATORS[node.op].to_numpy(**T._map_args(node, lambda n: T.counted(node.op, n, self.lower(n)[0])))

    def _binary(self, node) -> tuple[str, bool]:
        x1, x2 = node.arg("x1"), node.arg("x2")
        (a, a_fresh), (b, b_fresh) = self.lower(x1), self.lower(x2)
        a, b = T.counted(node.op, x1, a), T.counted(node.op, x2, b)
        shape = self._shape(node)
        if a_fresh and self._shape(x1) == shape:
            into, other, other_node = a, b, x2
        elif b_fresh and self._shape(x2) == shape:
            into, other, other_node = b, a, x1
        else:
            return OPERATORS[node.op].to_numpy(x1=a, x2=b), False
        ufunc = f"np.{node.op}"
        if node.op == "divide" and into == a and _is_number(other_node) and other_node.value.is_zero is False:
            # a multiply costs a fraction of a divide; the reciprocal of a number is a Python float
            ufunc, b = (
                "np.multiply",
                f"1 / {b}" if isinstance(other_node.value, sp.Symbol | sp.Integer) else f"1 / ({b})",
            )
        if _is_number(other_node):
            out = into
        else:
            if not other.isidentifier():
                # the operand is read twice (the ufunc's argument and _into's test): compute it once
                name = self._fresh()
                self.lines.append(f"{name} = {other}")
                a, b = (name, b) if other == a and into != a else (a, name)
                other = name
            out = f"_into({into}, {other})"
            self.helpers.add("_into")
        self.lines.append(f"{into} = {ufunc}({a}, {b}, out={out})")
        return into, True

    def _is_product_sum(self, node) -> bool:
        # sum(a * b, axis) over two arrays of one shape, summed without keepdims or options
        product = node.arg("a")
        options = dict(node.args)
        return (
            isinstance(product, T.Call)
            and product.op == "multiply"
            and not options.get("keepdims")
            and options.get("dtype") is None
            and options.get("out") is None
            and not _is_number(product.arg("x1"))
            and not _is_number(product.arg("x2"))
            and self._shape(product.arg("x1")) == self._shape(product.arg("x2"))
        )

    def _product_sum(self, node) -> tuple[str, bool]:
        """``sum(a * b, axis)`` as one ``np.einsum`` (``np.dot`` for vectors) pass when a or b is a floating
        array of our own.

        The product is never written out (a pass and an array saved, and the sum reads half as
        much). Only with a floating operand: einsum keeps an integer product's dtype where
        ``np.sum`` widens it, but a float with anything promotes alike in both.
        """
        product = node.arg("a")
        (a, a_fresh), (b, b_fresh) = self.lower(product.arg("x1")), self.lower(product.arg("x2"))
        ndim = len(self._shape(product))
        if not (a_fresh or b_fresh) or ndim == 0:
            code = OPERATORS["multiply"].to_numpy(x1=a, x2=b)
            return OPERATORS["sum"].to_numpy(
                **T._map_args(node, lambda n: code if n is product else self.lower(n)[0])
            ), False
        axis = dict(node.args).get("axis")
        from ..core.ops.elementwise import normalize_axes

        summed = normalize_axes(axis, ndim, "sum")
        letters = "ijklmnopqrstuvwxyz"[:ndim]
        kept = "".join(c for d, c in enumerate(letters) if d not in summed)
        # the array of our own first: neither conjugates, but keep a real operand in front
        first, second = (a, b) if a_fresh else (b, a)
        if ndim == 1 and summed == (0,):
            # a dot product: BLAS, and a call costs a fraction of einsum's on small vectors
            return f"np.dot({first}, {second})", False
        return f'np.einsum("{letters},{letters}->{kept}", {first}, {second})', False

    def _shape(self, node) -> tuple:
        return tuple(T.build(node, self.layer.scope()).shape)

    def _fresh(self) -> str:
        while True:
            self.count += 1
            name = "buf" if self.count == 1 else f"buf{self.count}"
            if name not in self.taken:
                self.taken.add(name)
                return name


def _is_number(node) -> bool:
    """Whether a tree node is lowered to a real Python number (an int, a float, a size)."""
    return isinstance(node, T.Num) and sp.sympify(node.value).is_real is True


def _output_var(layer) -> str:
    return layer.output


def _needed_sizes(node) -> set[sp.Symbol]:
    """Size symbols that a closed form's NumPy code mentions (numbers, options)."""
    out = set()
    for n in _walk(node):
        values = []
        if isinstance(n, T.Num):
            values.append(n.value)
        elif isinstance(n, T.Call):
            values.extend(v for _, v in n.args if not isinstance(v, T.Node))
        elif isinstance(n, T.Element):
            values.extend(n.index)
        for v in values:
            for item in v if isinstance(v, tuple) else (v,):
                if isinstance(item, sp.Basic):
                    out |= {s for s in item.free_symbols if s.is_positive}
    return out


def _sized_body(layer, args, sizes, code, target, broadcast_from, prefer=None) -> tuple[tuple[str, ...], list[str]]:
    """(arguments, body lines): size bindings, the expression, and the shape fix-up of the result."""
    body = []
    if sizes:
        args, bindings = bind_sizes(layer, args, sizes, prefer)
        body += bindings
    *pre, last = code.split("\n")
    body += pre
    if broadcast_from is not None:
        body.append(f"return np.array(np.broadcast_to({last}, {broadcast_from}.shape))")
    elif len(target) == 0:
        body.append(f"return np.asarray({last})")
    else:
        body.append(f"return {last}")
    return args, body


def bind_sizes(layer, args, sizes, prefer=None) -> tuple[tuple[str, ...], list[str]]:
    """(arguments, binding lines) for the sizes a body needs.

    When the arguments it reads do not give every size (``g`` of length
    ``floor((L - k) / 2) + 1`` does not give ``L``), the input being differentiated
    (``prefer``) is declared too for its shape, then other inputs mentioning a missing size.

    >>> from symderive.layer import load_layer
    >>> layer = load_layer("conv1d_ncl_s2")
    >>> bind_sizes(layer, ("w", "g"), {sp.Symbol("L", integer=True, positive=True)}, prefer="x")
    (('x', 'w', 'g'), ['L = x.shape[2]'])
    """
    args = tuple(args)
    try:
        return args, size_bindings(layer, args, sizes)
    except NotVectorisable:
        pass
    names = set(args)
    candidates = ([prefer] if prefer in layer.inputs else []) + list(layer.inputs)
    for name in candidates:
        if name in names or not any(sp.sympify(d).free_symbols & set(sizes) for d in layer.inputs[name]):
            continue
        names.add(name)
        try:
            return _ordered_args(layer, names), size_bindings(layer, _ordered_args(layer, names), sizes)
        except NotVectorisable:
            continue
    return args, size_bindings(layer, _ordered_args(layer, names), sizes)


class _SizePrinter(PythonCodePrinter):
    """Python for integer size expressions: a floor or ceiling of a quotient by a constant
    is integer division, so shapes and bindings stay ``int`` (NumPy refuses float indices)."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": False})

    def _print_floor(self, e):
        num, den = sp.fraction(sp.together(e.args[0]))
        if den.is_Integer:
            return f"({self._print(num)}) // {int(den)}"
        return f"int({super()._print_floor(e)})"

    def _print_ceiling(self, e):
        num, den = sp.fraction(sp.together(e.args[0]))
        if den.is_Integer:
            return f"-(({self._print(-num)}) // {int(den)})"
        return f"int({super()._print_ceiling(e)})"


def size_code(expr) -> str:
    """Python computing an integer size expression exactly, as an ``int``.

    A quotient by a constant that the sizes make whole (a size solved from a shape) is
    written as integer division.

    >>> H, k = sp.symbols("H k", integer=True, positive=True)
    >>> size_code(sp.floor((H - k) / 2) + 1), size_code((H - k + 2) / 2)
    ('(H - k) // 2 + 1', '(H - k + 2) // 2')
    """
    expr = sp.sympify(expr)
    num, den = sp.fraction(sp.together(expr))
    if den.is_Integer and den != 1 and not expr.has(sp.floor, sp.ceiling, sp.Mod):
        return f"({_SizePrinter().doprint(num)}) // {int(den)}"
    return _SizePrinter().doprint(expr)


def size_bindings(layer, args, sizes) -> list[str]:
    """Lines ``H = x.shape[0]`` binding each needed size from the declared arguments."""
    known: dict[sp.Symbol, str] = {}
    dims = []
    for a in args:
        shape = layer.forward.shape if a == "g" else layer.inputs[a]
        for k, d in enumerate(shape):
            dims.append((sp.sympify(d), f"{a}.shape[{k}]"))
    for d, code in dims:
        if isinstance(d, sp.Symbol) and d not in known:
            known[d] = code
    changed = True
    while changed and not set(sizes) <= set(known):
        changed = False
        for d, code in dims:
            unknown = [s for s in d.free_symbols if s not in known]
            # a dimension linear in one unknown size gives it; floor(H / 2) and the like do not
            if len(unknown) == 1 and d.is_polynomial(unknown[0]) and sp.degree(d, unknown[0]) == 1:
                value = sp.Symbol("_value_")
                solved = sp.solve(sp.Eq(d, value), unknown[0])
                if len(solved) == 1:
                    known[unknown[0]] = size_code(
                        solved[0].xreplace(
                            {s: sp.Symbol(known[s]) for s in d.free_symbols if s in known} | {value: sp.Symbol(code)}
                        )
                    )
                    changed = True
    missing = [s for s in sizes if s not in known]
    if missing:
        raise NotVectorisable(f"size {missing[0]} cannot be read from the arguments {', '.join(args)}")
    order = {s: k for k, s in enumerate(layer.sizes)}
    return [_binding(s, known[s]) for s in sorted(sizes, key=lambda s: order.get(s, len(order)))]


def _binding(size, code: str) -> str:
    """``O = g.shape[1]``: the layer's own size names, even the ones ruff finds ambiguous (l, O, I)."""
    line = f"{size} = {code}"
    return line + "  # noqa: E741" if str(size) in {"l", "O", "I"} else line


# -- lowering an index form to broadcast NumPy --------------------------------------------------

_GATHER = '''def _gather(a, *index):
    """a[index] with index arrays broadcast together; reads outside a's shape are 0."""
    index = np.broadcast_arrays(*(np.asarray(i) for i in index))
    inside = np.ones(index[0].shape, dtype=bool)
    for i, n in zip(index, a.shape, strict=True):
        inside &= (i >= 0) & (i < n)
    if a.size == 0:
        return np.zeros(inside.shape, dtype=a.dtype)
    clipped = tuple(np.clip(i, 0, n - 1) for i, n in zip(index, a.shape, strict=True))
    return np.where(inside, a[clipped], 0)
'''

_RANGE = '''def _range(lo, hi):
    """The integers from min(lo) to max(hi) (inclusive), bounds broadcast over outer indices."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    if lo.size == 0 or hi.size == 0:
        return np.arange(0)
    return np.arange(int(lo.min()), int(hi.max()) + 1)
'''

#: helpers owned by codegen (the operators' helpers live in ``symderive.ops``)
CODEGEN_HELPERS = {"_gather": _GATHER, "_range": _RANGE, "_into": _INTO}


@dataclass(frozen=True)
class Val:
    """Lowered code and its depth: an array whose last ``depth`` axes are index variables."""

    code: str
    depth: int


class IndexLowering(NumPyPrinter):
    """Lowers a scalar index expression at free indices to whole-array NumPy.

    A SymPy printer: one ``_print_X`` per node, each returning a :class:`Val`; the
    elementwise functions' NumPy names come from the operator table; any other node is an
    explicit :class:`NotVectorisable`. Every index variable gets an axis: the free indices
    first, then each summation variable as the next axis in, so an expression at nesting
    depth ``d`` is an array whose trailing ``d`` axes are the variables in scope (size 1
    where it does not depend on one). A ``GSum`` sums its variable's axis away over the
    bounding range of its limits, with the exact limits as a mask; reads gather with zero
    outside.

    >>> from symderive.layer import load_layer
    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> IndexLowering(load_layer("linear")).lower(sp.exp(n) + abs(sp.IndexedBase("x")[n - 1])).code
    '(np.abs(_gather(x, (-1 + n))) + np.exp(n))'
    """

    printmethod = "_symderive_numpy"

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.lines: list[str] = []
        self.vars: dict[sp.Symbol, tuple[str, int]] = {}
        self.depth = 0
        self.reads: set[str] = set()
        self.sizes: set[sp.Symbol] = set()
        self.counter = itertools.count()
        self.names: set[str] = set()
        self.sums: dict[tuple, Val] = {}

    def function_body(
        self, expr: sp.Expr, index: tuple, shape, prefer: str | None = None
    ) -> tuple[list[str], tuple[str, ...], set[str]]:
        """(body lines, arguments, helpers) of a function returning ``expr`` over ``shape``.

        ``prefer`` names the input whose shape is ``shape``, declared when the sizes cannot
        be read from the arguments the expression reads."""
        shape = tuple(sp.sympify(d) for d in shape)
        for k, (i, n) in enumerate(zip(index, shape, strict=True)):
            name = self._fresh(str(i))
            trail = len(shape) - 1 - k
            reshape = f".reshape(-1{', 1' * trail})" if trail else ""
            self.lines.append(f"{name} = np.arange({self._size_code(n)}){reshape}")
            self.vars[i] = (name, len(shape))
        self.depth = len(shape)
        value = self.lower(settle_sizes(expr, self.layer))
        shape_code = "(" + ", ".join(self._size_code(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        result = f"np.array(np.broadcast_to({self._at(value, len(shape))}, {shape_code}), dtype=float)"
        args = _ordered_args(self.layer, self.reads)
        if self.sizes - set(self.layer.sizes):
            raise NotVectorisable(f"unexpected symbols {sorted(map(str, self.sizes - set(self.layer.sizes)))}")
        args, bindings = bind_sizes(self.layer, args, set(self.sizes), prefer)
        body = bindings + self.lines + [f"return {result}"]
        helpers = {"_gather"} if any("_gather(" in ln for ln in self.lines) or "_gather(" in result else set()
        if any("_range(" in ln for ln in self.lines):
            helpers.add("_range")
        return body, args, helpers

    # -- helpers ---------------------------------------------------------------------
    def _fresh(self, hint: str) -> str:
        base = "".join(c for c in hint if c.isalnum() or c == "_") or "v"
        if base[0].isdigit():
            base = "v" + base
        name = f"{base}_"
        while name in self.names:
            name = f"{base}_{next(self.counter)}"
        self.names.add(name)
        return name

    def _size_code(self, expr) -> str:
        expr = sp.sympify(expr)
        self.sizes |= {s for s in expr.free_symbols}
        return size_code(expr)

    @staticmethod
    def _at(val: Val, depth: int) -> str:
        if val.depth >= depth or val.depth == 0:
            return val.code
        return f"({val.code})[..., {', '.join(['None'] * (depth - val.depth))}]"

    def _common(self, vals) -> tuple[list[str], int]:
        depth = max((v.depth for v in vals), default=0)
        return [self._at(v, depth) for v in vals], depth

    # -- the walk: one _print_X per node ---------------------------------------------
    def lower(self, e) -> Val:
        """The lowered value of a scalar expression."""
        return self._print(sp.sympify(e))

    def condition(self, c) -> Val:
        """The lowered boolean value of an integer condition."""
        return self._print(c)

    def _print(self, expr, **kwargs) -> Val:
        value = super()._print(expr, **kwargs)
        if not isinstance(value, Val):  # a node no _print_X below lowers
            raise NotVectorisable(f"cannot lower {type(expr).__name__} ({sp.sstr(expr)}) to NumPy")
        return value

    def emptyPrinter(self, expr):
        raise NotVectorisable(f"cannot lower {type(expr).__name__} ({sp.sstr(expr)}) to NumPy")

    def _print_Integer(self, e) -> Val:
        return Val(str(int(e)), 0)

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_Rational(self, e) -> Val:
        return Val(f"({int(e.p)} / {int(e.q)})", 0)

    _print_Half = _print_Rational

    def _print_Float(self, e) -> Val:
        return Val(repr(float(e)), 0)

    _print_NaN = _print_Infinity = _print_NegativeInfinity = _print_Float

    def _print_Exp1(self, e) -> Val:
        return Val("np.e", 0)

    def _print_Pi(self, e) -> Val:
        return Val("np.pi", 0)

    def _print_Add(self, e, **kwargs) -> Val:
        codes, depth = self._common([self._print(a) for a in e.args])
        return Val("(" + " + ".join(codes) + ")", depth)

    def _print_Mul(self, e, **kwargs) -> Val:
        codes, depth = self._common([self._print(a) for a in e.args])
        return Val("(" + " * ".join(codes) + ")", depth)

    def _print_Pow(self, e, rational=False) -> Val:
        (base, exp), depth = self._common([self._print(e.base), self._print(e.exp)])
        if e.exp == -1:
            return Val(f"(1.0 / {base})", depth)
        if e.exp.is_Integer and int(e.exp) < 0:
            return Val(f"(1.0 / {base} ** {-int(e.exp)})", depth)
        return Val(f"({base} ** {exp})", depth)

    def _print_Iverson(self, e) -> Val:
        cond = self._print(e.args[0])
        return Val(f"np.asarray({cond.code}, dtype=float)", cond.depth)

    def _print_KroneckerDelta(self, e) -> Val:
        (a, b), depth = self._common([self._print(x) for x in e.args[:2]])
        return Val(f"np.asarray({a} == {b}, dtype=float)", depth)

    def _print_Piecewise(self, e) -> Val:
        vals = [(self._print(expr), self._print(cond)) for expr, cond in e.args]
        depth = max(max(v.depth, c.depth) for v, c in vals)
        code = self._at(vals[-1][0], depth)
        for v, c in reversed(vals[:-1]):
            code = f"np.where({self._at(c, depth)}, {self._at(v, depth)}, {code})"
        return Val(code, depth)

    def _print_Defined(self, e) -> Val:
        # a partial operation outside its domain is nan, as the evaluator and NumPy have it
        (value, cond), depth = self._common([self._print(e.args[0]), self._print(e.args[1])])
        return Val(f"np.where({cond}, {value}, np.nan)", depth)

    def _print_floor(self, e) -> Val:
        num, den = sp.fraction(sp.together(e.args[0]))
        if not den.is_Integer:
            raise NotVectorisable(f"floor of {e.args[0]}: not an integer division by a constant")
        (a,), depth = self._common([self._print(num)])
        return Val(f"({a} // {int(den)})", depth)

    def _print_ceiling(self, e) -> Val:
        # ceiling(a / q) == -floor(-a / q), and floor is exact integer division
        inner = self._print_floor(sp.floor(-e.args[0], evaluate=False))
        return Val(f"(-{inner.code})", inner.depth)

    def _print_Mod(self, e) -> Val:
        (a, b), depth = self._common([self._print(x) for x in e.args])
        return Val(f"({a} % {b})", depth)

    def _print_Max(self, e) -> Val:
        return self._folded("np.maximum", e.args)

    def _print_Min(self, e) -> Val:
        return self._folded("np.minimum", e.args)

    def _folded(self, fn: str, args) -> Val:
        codes, depth = self._common([self._print(a) for a in args])
        code = codes[0]
        for c in codes[1:]:
            code = f"{fn}({code}, {c})"
        return Val(code, depth)

    def _print_elementwise(self, op: str, e) -> Val:
        """An elementwise function of the operator table (``exp``, ``Abs`` ...), named as the table lowers it."""
        (arg,), depth = self._common([self._print(e.args[0])])
        return Val(OPERATORS[op].to_numpy(x=arg), depth)

    def _print_Symbol(self, s) -> Val:
        if s in self.vars:
            name, depth = self.vars[s]
            return Val(name, depth)
        name = str(s)
        if name in self.layer.inputs or name == "g":
            self.reads.add(name)
            return Val(name, 0)
        if s.is_integer and s.is_positive:
            self.sizes.add(s)
            return Val(name, 0)
        raise NotVectorisable(f"unbound symbol {s} in the index form")

    _print_Dummy = _print_Symbol

    def _print_Indexed(self, e) -> Val:
        name = str(e.base.label)
        if name not in self.layer.inputs and name != "g":
            raise NotVectorisable(f"read of unknown tensor {name}")
        self.reads.add(name)
        codes, depth = self._common([self._print(i) for i in e.indices])
        return Val(f"_gather({name}, {', '.join(codes)})", depth)

    # -- conditions --------------------------------------------------------------------
    def _print_BooleanTrue(self, c) -> Val:
        return Val("True", 0)

    def _print_BooleanFalse(self, c) -> Val:
        return Val("False", 0)

    def _print_And(self, c) -> Val:
        return self._joined(" & ", c.args)

    def _print_Or(self, c) -> Val:
        return self._joined(" | ", c.args)

    def _joined(self, op: str, args) -> Val:
        codes, depth = self._common([self._print(a) for a in args])
        return Val("(" + op.join(f"np.asarray({x})" for x in codes) + ")", depth)

    def _print_Not(self, c) -> Val:
        inner = self._print(c.args[0])
        return Val(f"~np.asarray({inner.code})", inner.depth)

    def _print_Relational(self, c) -> Val:
        (a, b), depth = self._common([self._print(c.lhs), self._print(c.rhs)])
        return Val(f"({a} {c.rel_op} {b})", depth)

    # -- sums ----------------------------------------------------------------------------
    def _print_GSum(self, e: GSum) -> Val:
        # the straight-line body keeps every temporary, so a sum met again at the same depth
        # with the same bindings of its free indices is the temporary already computed
        # (a derived batch-norm gradient repeats its variance sum dozens of times)
        bound = tuple(sorted((str(s), self.vars[s]) for s in e.free_symbols if s in self.vars))
        key = (e, self.depth, bound)
        if key not in self.sums:
            self.sums[key] = self._sum_limits(e.function, list(e.limits))
        return self.sums[key]

    def _sum_limits(self, body, limits) -> Val:
        if not limits:
            return self.lower(body)
        var, lo, hi = limits[-1]
        if any(b.has(sp.oo, -sp.oo) for b in (sp.sympify(lo), sp.sympify(hi))):
            raise NotVectorisable(f"unbounded summation over {var}")
        lo_v, hi_v = self.lower(lo), self.lower(hi)
        depth = self.depth + 1
        name = self._fresh(str(var))
        self.lines.append(f"{name} = _range({lo_v.code}, {hi_v.code})")
        saved = self.vars.get(var)
        self.vars[var] = (name, depth)
        outer_depth, self.depth = self.depth, depth
        inner = self._sum_limits(body, limits[:-1])
        if lo_v.depth == 0 and hi_v.depth == 0 and _depends_on(body, limits[:-1], var):
            # limits over sizes only: the range is exact, no mask needed
            summed = f"np.sum({inner.code}, axis=-1)"
        else:
            mask = f"(({name} >= {self._at(lo_v, depth)}) & ({name} <= {self._at(hi_v, depth)}))"
            summed = f"np.sum({self._at(inner, depth)} * {mask}, axis=-1)"
        self.depth = outer_depth
        if saved is None:
            self.vars.pop(var)
        else:
            self.vars[var] = saved
        tmp = self._fresh("s")
        self.lines.append(f"{tmp} = {summed}")
        return Val(tmp, outer_depth)


def _lower_elementwise(op: str):
    return lambda self, e: self._print_elementwise(op, e)


# one _print_X per elementwise function of the operator table that SymPy writes as its own
# function (exp, log, tanh, ..., Abs, sign): the NumPy name comes from the table's lowering
for _name, _op in OPERATORS.items():
    _cls = getattr(sp, _name, None) if _name != "abs" else sp.Abs
    if (
        _op.algebra == "elementwise"
        and len(_op.params) == 1
        and isinstance(_cls, type)
        and issubclass(_cls, sp.Function)
    ):
        setattr(IndexLowering, f"_print_{_cls.__name__}", _lower_elementwise(_name))


def _depends_on(body, inner_limits, var) -> bool:
    """Whether a summand (inside its inner limits) mentions ``var`` free, so its array has var's axis.

    A sum inside the summand that binds a variable of the same name does not count: its
    array has no axis for the outer one, and the outer sum must still count its terms.

    >>> k = sp.Symbol("k", integer=True)
    >>> _depends_on(GSum(sp.IndexedBase("x")[k], (k, 0, 3)), [], k)
    False
    """
    return var in sp.sympify(body).free_symbols or any(
        var in sp.sympify(b).free_symbols for _, lo, hi in inner_limits for b in (lo, hi)
    )


# -- the module --------------------------------------------------------------------------------


def module_source(layer, functions: list[Function]) -> str:
    """The module text: docstring, ``import numpy as np``, helpers once each, functions."""
    helpers: list[str] = []
    for fn in functions:
        for h in sorted(fn.helpers):
            if h not in helpers:
                helpers.append(h)
    doc = (
        f"NumPy forward pass and gradients of layer {layer.name}, generated and checked by symderive.\n\n"
        f"Each gradient comes from a proved claim or from the derived index form (see its docstring).\n"
        f"Regenerate with `symderive codegen {layer.name} -o FILE.py` rather than editing.\n"
    )
    head = python_docstring(doc) + "\n\nimport numpy as np\n"
    parts = [head]
    for h in helpers:
        source = CODEGEN_HELPERS.get(h) or NUMPY_HELPERS.get(h)
        if source is None:
            raise InternalError(f"NumPy helper {h!r} is listed by an operator but not registered")
        parts.append(source.strip("\n") + "\n")
    parts += [fn.source() for fn in functions]
    return "\n\n".join(parts)


def compile_module(source: str) -> dict:
    """Compile our own generated module source in a private namespace.

    Before it runs, the module is checked to be only what :func:`module_source` writes (a
    docstring, ``import numpy as np``, plain function definitions), so running it defines
    functions and nothing else, whatever text the docstrings hold.
    """
    return run_module(parse_module(source, {(None, "numpy", "np")}, _inert_definition), "symderive_emitted")


def parse_module(source: str, allowed_imports: set, allowed_statement) -> ast.Module:
    """The parsed module, after checking it holds only what its emitter writes: a docstring first, the imports
    ``allowed_imports`` names (``(module or None, name, alias)``), and statements ``allowed_statement`` accepts.
    Every emitter's module (NumPy, PyTorch, JAX) passes this check before it runs.

    >>> tree = parse_module("import numpy as np", {(None, "numpy", "np")}, lambda node: False)
    >>> tree.body[0].names[0].name
    'numpy'
    """
    tree = ast.parse(source, "<symderive emitted>")
    for k, node in enumerate(tree.body):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            if k == 0:
                continue
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if {(getattr(node, "module", None), a.name, a.asname) for a in node.names} <= allowed_imports:
                continue
        elif allowed_statement(node):
            continue
        raise InternalError(f"the emitted module has a statement codegen does not write: {ast.dump(node)[:100]}")
    return tree


def run_module(tree: ast.Module, name: str) -> dict:
    """Execute a parsed, checked module (:func:`parse_module`) in a private namespace."""
    namespace: dict = {"__name__": name}
    exec(compile(tree, "<symderive emitted>", "exec"), namespace)  # noqa: S102 -- checked by parse_module
    return namespace


def _inert_definition(node: ast.stmt) -> bool:
    """Whether a statement of an emitted NumPy module is a plain function definition (no decorator, annotation
    or computed default), which runs nothing when executed."""
    if not isinstance(node, ast.FunctionDef) or node.decorator_list or node.returns is not None:
        return False
    a = node.args
    arguments = a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x is not None]
    defaults = a.defaults + [d for d in a.kw_defaults if d is not None]
    return all(x.annotation is None for x in arguments) and all(isinstance(d, ast.Constant) for d in defaults)


# -- the check ---------------------------------------------------------------------------------


def valid_sizes(layer, limit: int | None = None) -> list[tuple[dict, int]]:
    """Every size assignment up to ``limit`` that the layer accepts, with its count of tight assumptions.

    The default limit keeps the enumeration to a few thousand points (5 per size up to
    four sizes, else 3).

    >>> from symderive.layer import load_layer
    >>> len(valid_sizes(load_layer("linear")))
    25
    """
    sizes = tuple(layer.sizes)
    limit = limit or (5 if len(sizes) <= 4 else 3)
    candidates = _valid_in_box(layer, [range(1, limit + 1)] * len(sizes))
    if not candidates:
        # assumptions that exclude the small sizes ("n >= 12"): the box starts at the smallest allowed point
        start = smallest_allowed_sizes(layer) or {}
        _refuse_huge(layer, start)
        candidates = _valid_in_box(layer, [range(start.get(s, 1), start.get(s, 1) + limit) for s in sizes])
    if not candidates:
        raise InternalError(f"no sizes up to {limit} satisfy the assumptions of layer {layer.name}")
    return candidates


def _valid_in_box(layer, ranges) -> list[tuple[dict, int]]:
    """The size assignments in the box ``ranges`` that the layer accepts, with their count of tight assumptions."""
    sizes = tuple(layer.sizes)
    conds = layer.size_assumptions()
    candidates = []
    for point in itertools.product(*ranges):
        env = dict(zip(sizes, point, strict=True))
        ev = Evaluator(env, {})
        try:
            if not all(ev.truth(c) for c in conds) or not is_valid_at(layer.forward, env):
                continue
        except EvaluationError:
            continue
        tight = sum(1 for c in conds if isinstance(c, sp.Rel) and ev.value(c.lhs) == ev.value(c.rhs))
        candidates.append((env, tight))
    return candidates


#: the most scalars an input may hold at the sizes the emitted code is checked at
MAX_CHECK_ELEMENTS = 100_000


def _refuse_huge(layer, sizes: dict) -> None:
    """InputError when the layer's inputs at ``sizes`` are too large to check the emitted code with."""
    for name, shape in layer.inputs.items():
        count = 1
        for d in shape:
            value = sp.sympify(sp.sympify(d).xreplace(sizes))
            count *= int(value) if value.is_Integer else 1
        if count > MAX_CHECK_ELEMENTS:
            at = ", ".join(f"{s}={v}" for s, v in sizes.items())
            raise InputError(
                f"the smallest sizes the assumptions allow ({at}) make input {name} hold {count} values, "
                f"more than the {MAX_CHECK_ELEMENTS} the check of the emitted code evaluates",
                where=f"layer {layer.name}",
            )


def smallest_allowed_sizes(layer) -> dict | None:
    """The allowed size assignment with the smallest sizes (sum first, then in declaration
    order), or None when the solver cannot tell.

    >>> from symderive.layer import load_layer
    >>> smallest_allowed_sizes(load_layer("conv2d"))
    {H: 1, W: 1, kh: 1, kw: 1}
    """
    import z3

    from ..core import domains

    sizes = tuple(layer.sizes)
    ctx = domains.Z3Context()
    opt = z3.Optimize()
    opt.set("rlimit", domains.RLIMIT)
    for s in sizes:
        opt.add(ctx.var(s) >= 1)
    try:
        for c in layer.size_assumptions():
            opt.add(ctx.cond(c))
    except domains.NonLinear:
        return None
    opt.minimize(z3.Sum([ctx.var(s) for s in sizes]) if sizes else z3.IntVal(0))
    for s in sizes:
        opt.minimize(ctx.var(s))
    if opt.check() != z3.sat:
        return None
    model = opt.model()
    return {s: model.eval(ctx.var(s), model_completion=True).as_long() for s in sizes}


def check_sizes(layer, count: int = 5, limit: int | None = None) -> list[dict]:
    """A few small size assignments satisfying the layer's assumptions, edge sizes first.

    The smallest (dimensions of 1), one with the most assumptions tight (a kernel as
    large as the input), one with the most distinct sizes (non-square), the largest, and
    one with parities unlike the others'.
    """
    sizes = tuple(layer.sizes)
    candidates = valid_sizes(layer, limit)
    chosen: list[dict] = []

    def pick(key):
        rest = [c for c in candidates if c[0] not in chosen]
        if rest:
            chosen.append(max(rest, key=key)[0])

    pick(lambda c: -sum(c[0].values()))
    if any(tight for _, tight in candidates):
        # without size assumptions this would only be the largest sizes again (slow to evaluate)
        pick(lambda c: (c[1], sum(c[0].values())))
    pick(lambda c: (len(set(c[0].values())), -abs(sum(c[0].values()) - 2.5 * len(sizes))))
    pick(lambda c: (len(set(c[0].values())), sum(c[0].values())))

    # strided shapes depend on parities (output_padding for odd H + 2 - kh only): one more
    # point with the parities furthest from those already chosen
    def parities(env):
        # of the sizes and of their differences (H + 2 - kh is odd when H and kh differ in parity)
        v = list(env.values())
        return [a % 2 for a in v] + [(a - b) % 2 for a, b in itertools.combinations(v, 2)]

    seen = [parities(env) for env in chosen]

    def parity_distance(c):
        mine = parities(c[0])
        return min(sum(a != b for a, b in zip(mine, p, strict=True)) for p in seen), -sum(c[0].values())

    pick(parity_distance)
    return chosen[:count]


def _input_shapes(layer, sizes) -> dict[str, tuple[int, ...]]:
    shapes = {n: concrete_shape(layer.input_tensor(n), sizes) for n in layer.inputs}
    if not layer.is_loss:
        shapes["g"] = concrete_shape(layer.forward, sizes)
    return shapes


def random_values(layer, sizes, rng) -> dict[str, np.ndarray]:
    """Random float64 inputs (and ``g``) satisfying the layer's tensor assumptions."""
    values = {n: np.asarray(rng.standard_normal(s)) for n, s in _input_shapes(layer, sizes).items()}
    return _apply_assumptions(layer, values, np)


def _apply_assumptions(layer, values, xp):
    dtypes = {n: np.asarray(v).dtype for n, v in values.items()}
    for a in layer.assumptions:
        if a.kind == "size":
            continue
        if a.kind == "sign" and isinstance(a.lhs, T.Ref) and isinstance(a.rhs, T.Num) and a.rhs.value == 0:
            v = values[a.lhs.name]
            mag = np.abs(v) + (0 if "=" in a.rel else 1) * _tenth(v)
            values[a.lhs.name] = mag if ">" in a.rel else -mag
        elif a.kind == "equal" and _is_sum_of_ref(a.lhs) and isinstance(a.rhs, T.Num):
            name = a.lhs.arg("a").name if "a" in dict(a.lhs.args) else _first_ref(a.lhs).name
            axis = dict(a.lhs.args).get("axis")
            v = np.abs(values[name]) + _tenth(values[name])
            total = v.sum(axis=axis, keepdims=True)
            values[name] = v / total * _number(a.rhs.value, v)
        elif a.kind == "equal" and isinstance(a.lhs, T.Ref) and _is_transpose_of(a.rhs, a.lhs.name):
            v = values[a.lhs.name]
            values[a.lhs.name] = (v + v.T) / 2
        else:
            raise CodegenRefusal(f"cannot generate check values satisfying assumption {a.text!r}")
    # arithmetic on a 0-d object array (eps of batch_norm) gives a bare SymPy number
    return {n: np.asarray(v, dtype=dtypes[n]) for n, v in values.items()}


def _tenth(v):
    if v.dtype == object:
        return sp.Rational(1, 10)
    return 0.1


def _number(value, like):
    if like.dtype == object:
        return sp.nsimplify(value)
    return float(value)


def _first_ref(node):
    return next(n for n in _walk(node) if isinstance(n, T.Ref))


def _is_sum_of_ref(node) -> bool:
    return isinstance(node, T.Call) and node.op == "sum" and isinstance(_first_ref(node), T.Ref)


def _is_transpose_of(node, name) -> bool:
    return isinstance(node, T.Call) and node.op == "transpose" and _first_ref(node).name == name


def check_functions(layer, functions: list[Function], source: str | None = None) -> None:
    """Compile the module and compare each function with its form at several sizes, or raise."""
    namespace = compile_module(source if source is not None else module_source(layer, functions))
    for k, sizes in enumerate(check_sizes(layer)):
        values = random_values(layer, sizes, np.random.default_rng(k))
        for fn in functions:
            check_one(namespace[fn.name], fn, sizes, values)


def check_one(function, fn: Function, sizes: dict, values: dict) -> None:
    """Compare one compiled function with its expected form at one size, or raise."""
    where = f"{fn.name} at sizes {_fmt_sizes(sizes)}"
    try:
        expected = evaluate(fn.expected, sizes, values)
    except EvaluationError as exc:
        raise InternalError(f"{where}: the proved form does not evaluate ({exc})") from exc
    kwargs = {a: values[a] for a in inspect.signature(function).parameters}
    try:
        with np.errstate(all="ignore"):
            got = np.asarray(function(**kwargs))
    except Exception as exc:
        raise InternalError(f"{where}: the emitted code raises {type(exc).__name__}: {exc}") from exc
    if got.shape != expected.shape:
        raise InternalError(f"{where}: emitted shape {got.shape}, expected {expected.shape}")
    if not np.allclose(got, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL, equal_nan=True):
        raise InternalError(
            f"{where}: emitted code and the form it came from differ\nemitted:  {got.tolist()}\nexpected: {expected.tolist()}"
        )


def _fmt_sizes(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


# -- generated tests ---------------------------------------------------------------------------


def _exact_values(layer, sizes, rng) -> dict[str, np.ndarray]:
    values = {}
    for n, s in _input_shapes(layer, sizes).items():
        draws = np.round(rng.uniform(-2, 2, size=s), 3)
        arr = np.empty(s, dtype=object)
        for point in itertools.product(*(range(d) for d in s)):
            arr[point] = sp.Rational(str(draws[point]))
        values[n] = arr
    values = _apply_assumptions(layer, values, None)
    return {n: v.astype(object) for n, v in values.items()}


def _exact_expected(tensor, sizes, exact_values, float_values) -> np.ndarray:
    try:
        out = evaluate(tensor, sizes, exact_values, exact=True)
        return np.vectorize(lambda v: float(sp.N(v, 30)), otypes=[float])(out) if out.size else out.astype(float)
    except (EvaluationError, TypeError):
        return evaluate(tensor, sizes, float_values)


def source_of_tests(module_name: str, functions: list[Function], cases) -> str:
    """The text of the generated test module."""
    _require_module_name(module_name)
    doc = (
        f"Tests of {module_name}, generated by symderive.\n\n"
        "Expected values come from symderive's exact evaluation of each function's index form\n"
        "at a few small sizes, with inputs drawn from a fixed seed.\n"
    )
    lines = [
        python_docstring(doc),
        "",
        "import numpy as np",
        "",
        f"import {module_name} as emitted",
        "",
        "ARGUMENTS = {",
    ]
    for fn in functions:
        lines.append(f"    {fn.name!r}: {tuple(fn.args)!r},")
    lines += ["}", "", "CASES = ["]
    for sizes, values, expected in cases:
        lines.append("    {")
        lines.append(f'        "sizes": {{{", ".join(f"{str(k)!r}: {v}" for k, v in sizes.items())}}},')
        lines.append('        "inputs": {')
        for n, v in values.items():
            lines.append(f"            {n!r}: np.array({_literal(v)}),")
        lines.append("        },")
        lines.append('        "expected": {')
        for n, v in expected.items():
            lines.append(f"            {n!r}: np.array({_literal(v)}),")
        lines.append("        },")
        lines.append("    },")
    lines += [
        "]",
        "",
        "",
        "def _check(name):",
        "    for case in CASES:",
        "        kwargs = {a: case['inputs'][a] for a in ARGUMENTS[name]}",
        "        got = np.asarray(getattr(emitted, name)(**kwargs))",
        "        expected = case['expected'][name]",
        "        assert got.shape == expected.shape, (name, case['sizes'], got.shape, expected.shape)",
        "        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11, err_msg=f\"{name} at {case['sizes']}\")",
    ]
    for fn in functions:
        lines += ["", "", f"def test_{fn.name}():", f"    _check({fn.name!r})"]
    return "\n".join(lines) + "\n"


def _require_module_name(name: str) -> None:
    # the tests say ``import NAME as emitted``: NAME is code, never arbitrary text
    problem = identifier_problem(name, emitted=False)
    if problem:
        raise InputError(
            f"the tests cannot import a module named {name!r}: {problem} (name the module NAME.py, NAME an identifier)",
            where="--tests",
        )


def _literal(v: np.ndarray) -> str:
    return repr(np.asarray(v, dtype=float).tolist())


__all__ = [
    "ClaimNotProved",
    "CodegenRefusal",
    "NotVectorisable",
    "check_sizes",
    "emit_numpy",
    "emit_tests",
]
