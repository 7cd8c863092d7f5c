"""Layers: load and validate a layer file (or a built-in name) into a :class:`Layer`.

A layer is data (LANGUAGE.md, "Layers"): inputs with symbolic shapes, one output in
closed or index form, assumptions, constants and known claims. Built-in layers are TOML
files in ``symderive/layers/`` and load exactly like a user's file.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp
import z3
from sympy.printing.str import StrPrinter

from ..core import domains
from ..core.assumptions import Assumption
from ..core.ir import IntegerDivisionPrinting, Tensor, fresh_indices, leaf, plain
from ..core.ops import OPERATORS
from ..core.tree import Call, Node, Num, Ref
from ..errors import InputError
from ..escape import identifier_problem


@dataclass(frozen=True)
class KnownClaim:
    """A ``[[claims]]`` entry of a layer file.

    >>> KnownClaim("x", "convolve(g, w, 'full')").expect
    'proved'
    """

    wrt: str
    claim: str
    assume: tuple[str, ...] = ()
    expect: str = "proved"


@dataclass(frozen=True)
class Intermediate:
    """A named quantity of the forward pass (``[intermediates]``): its defining text and its
    index-level tensor over the inputs (the intermediates above it inlined).

    >>> load_layer("batch_norm").intermediates[0].name
    'mu'
    """

    name: str
    text: str
    tensor: Tensor = field(compare=False)
    #: its closed form (None for an index-form definition)
    tree: Node | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Layer:
    """A validated layer.

    ``sizes`` are the size symbols in declaration order (as they first appear in
    ``inputs``, then in ``shape``); ``inputs`` maps each input name to its shape (a
    tuple of SymPy integer expressions over sizes); ``output`` is the output's name
    (``"L"`` makes a loss layer); ``forward`` is the output's index-level tensor and
    ``forward_tree`` its closed form (None for an index-form output, whose scalar
    element is ``forward_index`` at the free indices ``output_indices``).
    """

    name: str
    description: str
    sizes: tuple[sp.Symbol, ...]
    inputs: dict[str, tuple[sp.Expr, ...]]
    output: str
    forward: Tensor
    assumptions: tuple[Assumption, ...] = ()
    constants: tuple[str, ...] = ()
    claims: tuple[KnownClaim, ...] = ()
    forward_tree: Node | None = None
    forward_index: sp.Expr | None = None
    output_indices: tuple[sp.Symbol, ...] = ()
    source: str = ""
    forward_text: str = ""
    #: per input: step kind -> equation name from a textbook or seed (``"Eq. E"``)
    labels: dict = field(default_factory=dict, compare=False)
    #: named quantities of the forward pass, in order (``[intermediates]``)
    intermediates: tuple[Intermediate, ...] = ()
    #: abstract elementwise functions (``functions = ["f"]``): proved for every f
    functions: tuple[str, ...] = ()

    @property
    def is_loss(self) -> bool:
        """Whether the output is a scalar loss ``L`` (no upstream gradient ``g``)."""
        return self.output == "L"

    def require_differentiable(self, wrt: str) -> None:
        """Raise an input error unless ``wrt`` is an input that gradients are taken for."""
        if not isinstance(wrt, str):
            raise TypeError(
                f"wrt names an input of layer {self.name!r} as a string, got {type(wrt).__name__} {wrt!r:.60}"
            )
        if wrt not in self.inputs:
            raise InputError(f"--wrt {wrt!r} is not an input of layer {self.name!r} (inputs: {', '.join(self.inputs)})")
        if wrt in self.constants:
            raise InputError(f"--wrt {wrt!r} is a constant of layer {self.name!r}: it is not differentiated")

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The inputs that gradients are taken with respect to (not constants)."""
        return tuple(n for n in self.inputs if n not in self.constants)

    def input_tensor(self, name: str) -> Tensor:
        """The leaf tensor of one input."""
        return leaf(name, self.inputs[name])

    def upstream(self) -> Tensor:
        """``g``, the upstream gradient dL/dy, of the output's shape (non-final layers)."""
        return leaf("g", self.forward.shape)

    @property
    def intermediate_names(self) -> tuple[str, ...]:
        """The names of the intermediates, in order."""
        return tuple(i.name for i in self.intermediates)

    def scope(self) -> dict[str, Tensor]:
        """The names a claim may use, as tensors: inputs, intermediates, ``g`` and the output."""
        out = {n: self.input_tensor(n) for n in self.inputs}
        out.update((i.name, i.tensor) for i in self.intermediates)
        if not self.is_loss:
            out["g"] = self.upstream()
        out[self.output] = self.forward
        return out

    def scope_with_leaf(self, name: str) -> dict[str, Tensor]:
        """The scope with intermediate ``name`` a leaf: what depends on it (the intermediates
        below it, the output) rebuilt over that leaf, what it depends on held fixed.

        >>> layer = load_layer("layer_norm")
        >>> layer.scope_with_leaf("xhat")["y"].at((0, 0))
        beta[0] + gamma[0]*xhat[0, 0]
        """
        position = self.intermediate_names.index(name)
        sizes = {str(s): s for s in self.sizes}
        scope = {n: self.input_tensor(n) for n in self.inputs}
        for k, i in enumerate(self.intermediates):
            if k < position:
                scope[i.name] = i.tensor
            elif k == position:
                scope[i.name] = leaf(i.name, i.tensor.shape)
            else:
                where = f"{self.source}: {i.name}"
                scope[i.name] = _defined(i.name, i.text, scope, sizes, i.tensor.shape, where, self.functions)[0]
        shape = None if self.forward_tree is not None else self.forward.shape
        where = f"{self.source}: output"
        forward = _defined(self.output, self.forward_text, scope, sizes, shape, where, self.functions)[0]
        scope[self.output] = _refined(forward, self.size_assumptions())
        if not self.is_loss:
            scope["g"] = self.upstream()
        return scope

    def size_assumptions(self, extra=()) -> list[sp.Basic]:
        """The conditions on sizes: every size >= 1, the layer's size assumptions, and those
        of ``extra`` (Assumptions of kind "size", or SymPy conditions as they are)."""
        conds = [sp.Ge(s, 1) for s in self.sizes]
        conds += [a.cond for a in self.assumptions if a.kind == "size"]
        for a in extra:
            if not isinstance(a, Assumption):
                conds.append(a)
            elif a.kind == "size":
                conds.append(a.cond)
        return conds


# -- loading ---------------------------------------------------------------------------
LAYERS_DIR = Path(__file__).parent.parent / "layers"
_TOP_KEYS = (
    "name",
    "description",
    "assume",
    "constants",
    "functions",
    "inputs",
    "intermediates",
    "output",
    "claims",
    "labels",
)
#: the step kinds a layer file's [labels] may name (symderive.derive.Step.kind)
STEP_KINDS = (
    "loss",
    "forward",
    "chain rule",
    "partial derivative",
    "partial derivative, deltas summed",
    "kronecker deltas",
    "delta elimination",
    "guards",
    "reindex",
    "kernel offsets",
    "result",
)
_CLAIM_KEYS = ("wrt", "claim", "assume", "expect")
_EXPECTS = ("proved", "refuted", "unknown")


def as_layer(layer) -> Layer:
    """A Layer as it is, or loaded from a built-in name or a path.

    >>> as_layer("linear").name
    'linear'
    """
    if isinstance(layer, Layer):
        return layer
    return load_layer(layer)


def builtin_layer_names() -> list[str]:
    """The names of the built-in layers.

    >>> "conv2d" in builtin_layer_names()
    True
    """
    return sorted(p.stem for p in LAYERS_DIR.glob("*.toml"))


def load_layer(name_or_path: str | Path) -> Layer:
    """A built-in layer by name, or a layer file (an argument with ``/`` or ending in ``.toml``).

    >>> load_layer("linear").inputs["w"]
    (m, n)
    """
    if not isinstance(name_or_path, str | os.PathLike):
        raise TypeError(
            f"a layer is a built-in name or a path to a TOML file, got {type(name_or_path).__name__} {name_or_path!r:.60}"
        )
    text = str(name_or_path)
    if "/" in text or text.endswith(".toml") or isinstance(name_or_path, os.PathLike):
        path = Path(text)
        if not _is_file(path):
            raise InputError(f"no layer file {text if len(text) <= 200 else text[:120] + '...' + text[-40:]}")
    else:
        path = LAYERS_DIR / f"{text}.toml"
        if not text.isidentifier() or len(text) > 200 or not _is_file(path):
            raise InputError(_unknown_layer(text[:200]))
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not a TOML statement
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start} cannot be decoded)", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read layer file: {exc.strerror or exc}", where=str(path)) from None
    return layer_from_text(text, str(path))


# Cached: a pure function of two strings (the file is read anew each time, so an edited file
# is a new key), and a Layer is frozen; proving many claims about one layer builds it once.
@functools.lru_cache(maxsize=64)
def layer_from_text(text: str, source: str) -> Layer:
    """The Layer of a layer file's text; ``source`` names the file in error messages.

    >>> layer_from_text('name = "id"\\ninputs = {x = ["n"]}\\noutput = {y = "2 * x"}', "id.toml").inputs
    {'x': (n,)}
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"malformed TOML: {exc}", where=source) from None
    except RecursionError:
        raise InputError("malformed TOML: nested too deeply", where=source) from None
    try:
        return layer_from_dict(data, source=source)
    except RecursionError:
        raise InputError("a value is nested too deeply", where=source) from None


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the system refuses (too long, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _unknown_layer(name: str) -> str:
    """The message for a LAYER that is no built-in name: the closest names first, then all of them."""
    import difflib

    names = builtin_layer_names()
    close = difflib.get_close_matches(name.lower(), names, n=2, cutoff=0.6)
    close += [n for n in names if name.lower() in n and n not in close]
    hint = f"did you mean {' or '.join(repr(c) for c in close[:3])}? " if close else ""
    if _is_file(Path(f"{name}.toml")):
        hint = f"the file {name}.toml is a layer file: write {name}.toml; "
    return f"unknown layer {name!r} ({hint}built-in layers: {', '.join(names)}; a layer file is a path with / or .toml)"


def _rewhere(exc: InputError, where: str) -> InputError:
    """The same error, located in a layer file's key (keeping the column if any)."""
    column = exc.where.split(", ", 1)[1] if ", column" in exc.where else ""
    return InputError(exc.message, where=f"{where}, {column}" if column else where)


def _expect(value, kind, where: str):
    if not isinstance(value, kind):
        names = {str: "a string", list: "a list", dict: "a table"}
        raise InputError(f"must be {names.get(kind, kind.__name__)}, got {type(value).__name__}", where=where)
    return value


def _strings(value, where: str) -> list[str]:
    _expect(value, list, where)
    for k, v in enumerate(value):
        _expect(v, str, f"{where}[{k}]")
    return list(value)


#: the most dimensions a tensor may have: NumPy's limit, met by the exact evaluation of every proof
MAX_RANK = 32


def layer_from_dict(data: dict, source: str = "<layer>") -> Layer:
    """Validate a parsed layer file into a :class:`Layer` (every error names ``source`` and the key).

    >>> layer_from_dict({"name": "id", "inputs": {"x": ["n"]}, "output": {"y": "2 * x"}}).forward.shape
    (n,)
    """
    from ..core.parse import RESERVED

    _expect(data, dict, source)
    for key in data:
        if key not in _TOP_KEYS:
            raise InputError(f"unknown key {key!r} (allowed: {', '.join(_TOP_KEYS)})", where=f"{source}: {key}")
    for key in ("name", "inputs", "output"):
        if key not in data:
            raise InputError(f"missing key {key!r}", where=source)
    name = _expect(data["name"], str, f"{source}: name")
    description = _expect(data.get("description", ""), str, f"{source}: description")
    inputs_raw = _expect(data["inputs"], dict, f"{source}: inputs")
    if not inputs_raw:
        raise InputError("a layer needs at least one input", where=f"{source}: inputs")
    sizes: dict[str, sp.Symbol] = {}
    inputs: dict[str, tuple] = {}
    for tname, shape in inputs_raw.items():
        where = f"{source}: inputs.{tname}"
        _check_tensor_name(tname, where, RESERVED)
        inputs[tname] = _dimensions(_expect(shape, list, where), sizes, where)
    for s in sizes:
        if s in inputs:
            raise InputError(f"{s!r} is both a size and a tensor", where=f"{source}: inputs.{s}")
    constants = tuple(_strings(data.get("constants", []), f"{source}: constants"))
    for c in constants:
        if c not in inputs:
            raise InputError(f"constant {c!r} is not an input", where=f"{source}: constants")
    functions = _load_functions(data.get("functions", []), data, sizes, source, RESERVED)
    intermediates = _load_intermediates(data.get("intermediates", {}), inputs, sizes, source, RESERVED, functions)
    named = {n: leaf(n, shape) for n, shape in inputs.items()} | {i.name: i.tensor for i in intermediates}
    trees = {i.name: i.tree for i in intermediates}
    out = _load_output(data["output"], inputs, sizes, source, RESERVED, named, trees, functions)
    if out["forward"].ndim > MAX_RANK:
        raise InputError(
            f"the output has rank {out['forward'].ndim}, beyond the {MAX_RANK} dimensions symderive handles",
            where=f"{source}: output",
        )
    assumptions = []
    for k, text in enumerate(_strings(data.get("assume", []), f"{source}: assume")):
        assumptions.append(_load_assumption(text, inputs, sizes, f"{source}: assume[{k}]"))
    layer = Layer(
        name=name,
        description=description,
        sizes=tuple(sizes.values()),
        inputs=inputs,
        output=out["name"],
        forward=out["forward"],
        assumptions=tuple(assumptions),
        constants=constants,
        forward_tree=out["tree"],
        forward_index=out["index_body"],
        output_indices=out["indices"],
        source=source,
        forward_text=out["text"],
        intermediates=intermediates,
        functions=functions,
    )
    layer = dataclasses.replace(layer, forward=_refined(layer.forward, layer.size_assumptions()))
    _check_differentiable_functions(layer, source)
    _check_sizes(layer, source)
    if layer.is_loss and layer.forward.ndim != 0:
        raise InputError(
            f"a loss output L must be a scalar, got shape {layer.forward.shape}", where=f"{source}: output.L"
        )
    claims = _load_claims(data.get("claims", []), layer, source)
    labels = _load_labels(data.get("labels", {}), layer, source)
    return dataclasses.replace(layer, claims=claims, labels=labels)


def _load_labels(raw, layer: Layer, source: str) -> dict:
    """``[labels]``: per input, a step kind -> the name a textbook gives that equation."""
    _expect(raw, dict, f"{source}: labels")
    out = {}
    for wrt, table in raw.items():
        where = f"{source}: labels.{wrt}"
        if wrt not in layer.inputs:
            raise InputError(f"{wrt!r} is not an input of the layer", where=where)
        _expect(table, dict, where)
        for kind, label in table.items():
            if kind not in STEP_KINDS:
                raise InputError(f"unknown step {kind!r} (steps: {', '.join(STEP_KINDS)})", where=f"{where}.{kind}")
            _expect(label, str, f"{where}.{kind}")
        out[wrt] = dict(table)
    return out


def _dimensions(raw: list, sizes: dict, where: str) -> tuple:
    """A list of dimensions (size expression strings or integers) as SymPy expressions.

    New size symbols are added to ``sizes`` in the order they appear.
    """
    from ..core.parse import parse_size_expr

    if len(raw) > MAX_RANK:
        raise InputError(f"rank {len(raw)} is beyond the {MAX_RANK} dimensions symderive handles", where=where)
    dims = []
    for k, d in enumerate(raw):
        if isinstance(d, bool) or not isinstance(d, str | int):
            raise InputError("a dimension is a size expression string or an integer", where=f"{where}[{k}]")
        if isinstance(d, int) and d.bit_length() > 64:
            # str() of an integer of thousands of digits is itself an error
            raise InputError(f"dimension of {d.bit_length()} bits is too large", where=f"{where}[{k}]")
        try:
            e, _ = parse_size_expr(str(d), sizes, where=f"{where}[{k}]", new_sizes=True)
        except InputError as exc:
            raise _rewhere(exc, f"{where}[{k}]") from None
        if not e.free_symbols and not (e.is_Integer and e >= 1):
            raise InputError(f"dimension {d!r} is not a size: every size is an integer >= 1", where=f"{where}[{k}]")
        for s in e.free_symbols:
            # a size becomes a variable of emitted Python code (issue 13)
            problem = None if str(s) in sizes else identifier_problem(str(s))
            if problem:
                raise InputError(f"{str(s)!r} is not a valid size name: {problem}", where=f"{where}[{k}]")
            sizes.setdefault(str(s), s)
        dims.append(e)
    return tuple(dims)


def _check_tensor_name(name: str, where: str, reserved) -> None:
    # the name becomes a parameter or variable of emitted Python code (issue 13)
    problem = identifier_problem(name)
    if problem:
        raise InputError(f"{name!r} is not a valid tensor name: {problem}", where=where)
    if name in reserved:
        raise InputError(f"{name!r} is reserved", where=where)
    if name in OPERATORS:
        raise InputError(f"{name!r} is the name of a function", where=where)


def _load_assumption(text: str, inputs, sizes, where: str) -> Assumption:
    from ..core.parse import parse_assumption

    try:
        return parse_assumption(text, inputs, sizes, where=where)
    except InputError as exc:
        raise _rewhere(exc, where) from None


def _load_functions(raw, data: dict, sizes, source: str, reserved) -> tuple[str, ...]:
    """``functions``: the names of abstract elementwise functions (``f``), each a new name whose
    derivatives' spellings (``f_prime``, ``f_prime_prime``) are new too."""
    from ..core.functions import spellings

    where = f"{source}: functions"
    names = _strings(raw, where)
    taken = set(data.get("inputs", {})) | set(sizes) | set(_table_keys(data, "intermediates"))
    taken |= set(_table_keys(data, "output")) - {"shape"}
    seen: set[str] = set()
    for k, name in enumerate(names):
        here = f"{where}[{k}]"
        problem = identifier_problem(name)
        if problem:
            raise InputError(f"{name!r} is not a valid function name: {problem}", where=here)
        for spelling in spellings([name]):
            if spelling in reserved or spelling in {"diff", "L"} or spelling.startswith("__"):
                raise InputError(f"{spelling!r} is reserved", where=here)
            if spelling in OPERATORS or spelling in SYMPY_NAMES:
                raise InputError(f"{spelling!r} is the name of a built-in function", where=here)
            if spelling in taken:
                raise InputError(f"{spelling!r} is also a tensor or a size of the layer", where=here)
            if spelling in seen:
                raise InputError(f"{spelling!r} is declared twice (f_prime is the derivative of f)", where=here)
            seen.add(spelling)
    return tuple(names)


#: names the claim language gives a meaning of its own (not in the operator table)
SYMPY_NAMES = frozenset({"Sum", "KroneckerDelta", "pi", "e"})


def _check_differentiable_functions(layer: Layer, source: str) -> None:
    """Refuse a forward that applies the highest named derivative of an abstract function
    (``f_prime_prime``): its own derivative has no name, so no gradient could be taken."""
    from ..core.functions import MAX_ORDER, abstract_names, derivative_name

    if not layer.functions:
        return
    idx = fresh_indices("i", layer.forward.ndim)
    used = abstract_names(layer.forward.element(idx))
    for name in layer.functions:
        if derivative_name(name, MAX_ORDER) in used:
            raise InputError(
                f"the forward applies {derivative_name(name, MAX_ORDER)}, whose derivative has no name: "
                f"a forward may use {name} and {derivative_name(name)} (claims "
                f"{derivative_name(name, MAX_ORDER)} too)",
                where=f"{source}: output.{layer.output}",
            )


def _table_keys(data: dict, key: str) -> list:
    value = data.get(key, {})
    return list(value) if isinstance(value, dict) else []


def _load_intermediates(raw, inputs, sizes, source: str, reserved, functions=()) -> tuple[Intermediate, ...]:
    """``[intermediates]``: each over the inputs and the intermediates above it, in order."""
    _expect(raw, dict, f"{source}: intermediates")
    scope = {n: leaf(n, shape) for n, shape in inputs.items()}
    out = []
    for name, text in raw.items():
        where = f"{source}: intermediates.{name}"
        _check_tensor_name(name, where, reserved)
        if name in inputs or name in sizes or name in scope:
            raise InputError(f"intermediate {name!r} is also an input, a size or an intermediate above", where=where)
        _expect(text, str, where)
        tensor, tree = _defined(name, text, scope, sizes, None, where, functions)
        if tensor.ndim > MAX_RANK:
            raise InputError(
                f"{name} has rank {tensor.ndim}, beyond the {MAX_RANK} dimensions symderive handles", where
            )
        scope[name] = tensor
        out.append(Intermediate(name, text, tensor, tree))
    return tuple(out)


def _defined(name: str, text: str, scope: dict, sizes, shape, where: str, functions=()) -> tuple[Tensor, Node | None]:
    """The tensor a closed-form or index-form definition of ``name`` gives over ``scope``, and
    its closed form (None for an index form); ``shape`` is an index form's (None: its valid region)."""
    from ..core.parse import parse_index_definition, parse_tree
    from ..core.tree import build

    sizes = dict(sizes)
    if _is_index_form(text, name, known=(*scope, *sizes)):
        defn = parse_index_definition(text, scope, sizes, name, where=where, functions=functions)
        if shape is None:
            shape = _valid_region(defn, sizes, where)
        free, body = defn.index, defn.body

        def element(idx):
            return body.xreplace(dict(zip(free, idx, strict=False)))

        return Tensor(shape=tuple(shape), element=element, valid=defn.valid, latex=sp.latex(body)), None
    tree = parse_tree(text, scope, sizes, where=where, functions=functions)
    return build(tree, scope), tree


def _inlined(tree: Node, trees: dict) -> Node:
    """A closed form with each intermediate's name replaced by its own closed form (what code
    generation reads: the inputs only)."""
    from ..core.tree import Apply, Element, Scalar

    if isinstance(tree, Ref):
        return _inlined(trees[tree.name], trees) if tree.name in trees else tree
    if isinstance(tree, Element | Apply):
        return dataclasses.replace(tree, node=_inlined(tree.node, trees))
    if not isinstance(tree, Call) or isinstance(tree, Scalar):
        return tree
    args = []
    for key, value in tree.args:
        if isinstance(value, Node):
            value = _inlined(value, trees)
        elif isinstance(value, tuple) and value and all(isinstance(v, Node) for v in value):
            value = tuple(_inlined(v, trees) for v in value)
        args.append((key, value))
    return Call(tree.op, tuple(args))


def _load_output(table, inputs, sizes, source: str, reserved, named=None, trees=None, functions=()) -> dict:
    """The output entry: its name, forward tensor, tree or index definition, text (``named``:
    the inputs' and intermediates' tensors)."""

    _expect(table, dict, f"{source}: output")
    entries = [k for k in table if k != "shape"]
    if len(entries) != 1:
        raise InputError(f"[output] needs exactly one tensor entry, got {entries}", where=f"{source}: output")
    name = entries[0]
    where = f"{source}: output.{name}"
    _check_tensor_name(name, where, reserved)
    if name in inputs or name in sizes:
        raise InputError(f"output {name!r} is also an input or a size", where=where)
    text = _expect(table[name], str, where)
    shape = None
    if "shape" in table:
        shape_where = f"{source}: output.shape"
        shape = _dimensions(_expect(table["shape"], list, shape_where), sizes, shape_where)
    named = named if named is not None else {n: leaf(n, s) for n, s in inputs.items()}
    if name in named:
        raise InputError(f"output {name!r} is also an intermediate", where=where)
    try:
        if _is_index_form(text, name, known=(*named, *sizes)):
            return _index_output(text, name, named, sizes, shape, where, functions)
        return _closed_output(text, name, named, sizes, shape, where, source, trees, functions)
    except InputError as exc:
        if exc.where.startswith(source):
            raise
        raise _rewhere(exc, where) from None


def _is_index_form(text: str, name: str, known=()) -> bool:
    """Whether an output's text is the index form ``y[i, j] == body``.

    An equation whose left side indexes a name that is neither an input nor a size
    (``z[i] == ...`` for output ``y``) counts too, so that the error names the left side
    instead of calling ``z`` an unknown name.
    """
    import ast

    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = _assignment(text)
        if node is None:
            return text.strip().startswith(name)
    except (ValueError, RecursionError, MemoryError):
        return False
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
        subscript = isinstance(node.left, ast.Subscript)
        left = node.left.value if subscript else node.left
        return isinstance(left, ast.Name) and (left.id == name or subscript and left.id not in known)
    return False


def _assignment(text: str):
    """``lhs = rhs`` (the other spelling of the index form) as the comparison ``lhs == rhs``, or None."""
    import ast

    try:
        body = ast.parse(text.strip(), mode="exec").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(body) == 1 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1:
        return ast.Compare(left=body[0].targets[0], ops=[ast.Eq()], comparators=[body[0].value])
    return None


def _refs(tree) -> set[str]:
    """The names a closed form reads."""
    from ..core.tree import Apply, Element

    if isinstance(tree, Ref):
        return {tree.name}
    if isinstance(tree, Element | Apply):
        return _refs(tree.node)
    if not isinstance(tree, Call):
        return set()
    out = set()
    for _, value in tree.args:
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, Node):
                out |= _refs(v)
    return out


def _closed_output(text, name, inputs, sizes, shape, where, source, trees=None, functions=()) -> dict:
    from ..core.parse import parse_tree
    from ..core.tree import build

    tree = parse_tree(text, inputs, sizes, where=where, functions=functions)
    forward = build(tree, inputs)
    if trees:
        index_form = [n for n, t in trees.items() if t is None and n in _refs(tree)]
        if index_form:
            raise InputError(
                f"the closed-form output uses the index-form intermediate {index_form[0]!r}: "
                "write the output in index form too",
                where=where,
            )
        tree = _inlined(tree, trees)
    if shape is not None and not _same_shape(forward.shape, shape):
        raise InputError(
            f"output shape {list(shape)} is inconsistent with {text!r}, of shape {list(forward.shape)}",
            where=f"{source}: output.shape",
        )
    return {"name": name, "forward": forward, "tree": tree, "index_body": None, "indices": (), "text": text}


def _same_shape(a, b) -> bool:
    return len(a) == len(b) and all(sp.simplify(sp.sympify(x) - sp.sympify(y)) == 0 for x, y in zip(a, b, strict=False))


def _index_output(text, name, inputs, sizes, shape, where, functions=()) -> dict:
    from ..core.parse import parse_index_definition

    defn = parse_index_definition(text, inputs, sizes, name, where=where, functions=functions)
    if shape is None:
        shape = _valid_region(defn, sizes, where)
    elif len(shape) != len(defn.index):
        raise InputError(
            f"shape has {len(shape)} dimensions but {name} has {len(defn.index)} indices",
            where=f"{where.rsplit('.', 1)[0]}.shape",
        )
    free, body = defn.index, defn.body

    def element(idx):
        return body.xreplace(dict(zip(free, idx, strict=False)))

    forward = Tensor(shape=tuple(shape), element=element, valid=defn.valid, latex=sp.latex(body))
    return {"name": name, "forward": forward, "tree": None, "index_body": body, "indices": free, "text": text}


def _valid_region(defn, sizes, where: str) -> tuple:
    """The output shape where every read is in range for every value of the bounded summation indices."""
    ask = "; give the output's shape explicitly (shape = [...])"
    size_syms = set(sizes.values())
    shape = []
    for i in defn.index:
        lowers, uppers = [], []
        for r in defn.reads:
            for e, n in zip(r.idx, r.shape, strict=False):
                if not e.has(i):
                    continue
                e = sp.expand(e)
                if e.has(sp.floor, sp.Mod) or e.coeff(i) != 1:
                    raise InputError(f"cannot infer the extent of index {i} from the read index {e}{ask}", where=where)
                rest = e - i
                lo_rest, hi_rest = rest, rest
                for s in rest.free_symbols - size_syms:
                    if s not in defn.sum_bounds or defn.sum_bounds[s][2]:
                        raise InputError(
                            f"cannot infer the extent of index {i} from the read index {e}{ask}", where=where
                        )
                    s_lo, s_hi, _ = defn.sum_bounds[s]
                    if (s_lo.free_symbols | s_hi.free_symbols) - size_syms:
                        raise InputError(f"cannot infer the extent of index {i}{ask}", where=where)
                    c = rest.coeff(s)
                    lo_rest = lo_rest.subs(s, s_lo if c > 0 else s_hi)
                    hi_rest = hi_rest.subs(s, s_hi if c > 0 else s_lo)
                lowers.append(-lo_rest)
                uppers.append(n - 1 - hi_rest)
        if not lowers:
            raise InputError(f"no tensor read uses index {i}{ask}", where=where)
        lo = sp.simplify(sp.Max(*lowers))
        if lo != 0:
            raise InputError(f"the valid range of index {i} starts at {lo}, not 0{ask}", where=where)
        shape.append(sp.simplify(sp.Min(*uppers) + 1))
    return tuple(shape)


def _load_claims(raw, layer: Layer, source: str) -> tuple[KnownClaim, ...]:
    from ..core.parse import parse_claim

    _expect(raw, list, f"{source}: claims")
    claims = []
    for k, entry in enumerate(raw):
        where = f"{source}: claims[{k}]"
        _expect(entry, dict, where)
        for key in entry:
            if key not in _CLAIM_KEYS:
                raise InputError(f"unknown key {key!r} (allowed: {', '.join(_CLAIM_KEYS)})", where=f"{where}.{key}")
        for key in ("wrt", "claim"):
            if key not in entry:
                raise InputError(f"missing key {key!r}", where=where)
        wrt = _expect(entry["wrt"], str, f"{where}.wrt")
        if wrt not in layer.inputs:
            raise InputError(f"{wrt!r} is not an input of the layer ({', '.join(layer.inputs)})", where=f"{where}.wrt")
        if wrt in layer.constants:
            raise InputError(f"{wrt!r} is a constant, not differentiated", where=f"{where}.wrt")
        text = _expect(entry["claim"], str, f"{where}.claim")
        assume = tuple(_strings(entry.get("assume", []), f"{where}.assume"))
        parsed = [
            _load_assumption(a, layer.inputs, {str(s): s for s in layer.sizes}, f"{where}.assume[{j}]")
            for j, a in enumerate(assume)
        ]
        check_extra_assumptions(layer, parsed, where=f"{where}.assume")
        expect = _expect(entry.get("expect", "proved"), str, f"{where}.expect")
        if expect not in _EXPECTS:
            raise InputError(f"expect must be one of {', '.join(_EXPECTS)}, got {expect!r}", where=f"{where}.expect")
        try:
            parse_claim(text, layer, wrt)
        except InputError as exc:
            raise _rewhere(exc, f"{where}.claim") from None
        claims.append(KnownClaim(wrt=wrt, claim=text, assume=assume, expect=expect))
    return tuple(claims)


def _assumed_true(facts) -> dict:
    """Each size assumption (in both spellings, ``kh <= H`` and ``H >= kh``) mapped to true."""
    true = {}
    for f in facts:
        if isinstance(f, sp.Rel):
            true[f] = sp.true
            true[f.reversed] = sp.true
    return true


def _refined(forward: Tensor, facts) -> Tensor:
    """The forward with branches on conditions the layer assumes resolved (``correlate``'s
    "valid" shape is a Piecewise on ``kh <= H``; under that assumption it is ``H - kh + 1``).

    Sound because a layer is only ever used under its own assumptions.
    """
    true = _assumed_true(facts)
    if not true:
        return forward
    shape = tuple(sp.sympify(d).xreplace(true) for d in forward.shape)
    if shape == tuple(forward.shape):
        return forward
    element = forward.element
    return dataclasses.replace(
        forward,
        shape=shape,
        element=lambda idx: sp.sympify(element(idx)).xreplace(true),
        valid=sp.sympify(forward.valid).xreplace(true),
    )


# -- consistency ------------------------------------------------------------------------
#: z3's budget for a layer's own questions (is it defined, are its assumptions consistent):
#: small questions, kept apart from the prover's RLIMIT so that a layer loads or is refused
#: the same way whatever limit a proof runs under
LAYER_RLIMIT = 20_000_000


def _failing_sizes(premises, conclusion, sizes):
    if _evidently_true(conclusion, sizes):
        return True, None
    return domains.failing_sizes(premises, conclusion, sizes, rlimit=LAYER_RLIMIT)


def _evidently_true(cond, sizes) -> bool:
    """``True``, or ``d >= 1`` for a positive constant or a size itself: no solver needed."""
    if cond is sp.true or cond == sp.true:
        return True
    if isinstance(cond, sp.GreaterThan) and cond.rhs == 1:
        d = cond.lhs
        return bool((d.is_Integer and d >= 1) or d in set(sizes))
    return False


def _quoted(texts) -> str:
    return ", ".join(f'"{t.strip()}"' for t in texts)


def _at(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


class _SizePrinter(IntegerDivisionPrinting, StrPrinter):
    """Size expressions as a layer file spells them: ``n // 2`` and ``n % 2``, not
    ``floor(n/2)`` and ``Mod(n, 2)`` (which a layer file does not accept)."""


def size_text(expr) -> str:
    """A size expression in a layer file's spelling.

    >>> n = sp.Symbol("n", integer=True)
    >>> size_text(sp.floor(n / 2) - 1), size_text(sp.Mod(n + 1, 2)), size_text(sp.ceiling(n / 2))
    ('(n // 2) - 1', '(n + 1) % 2', '(n + 1) // 2')
    """
    text = _SizePrinter().doprint(sp.sympify(expr))
    return text[1:-1] if _one_group(text) else text


def _one_group(text: str) -> bool:
    """Whether ``text`` is one parenthesised group, ``(a // 2)`` but not ``(a) % (b)``."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for k, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and k < len(text) - 1:
            return False
    return True


def _relation_text(cond) -> str:
    """A condition in the spelling an ``assume`` entry takes (``m == n``, not ``Eq(m, n)``)."""
    if isinstance(cond, sp.Rel):
        if cond.lhs.is_number and not cond.rhs.is_number:
            cond = cond.reversed
        return f"{size_text(cond.lhs)} {cond.rel_op} {size_text(cond.rhs)}"
    return size_text(cond)


def _assumption_hint(cond) -> str:
    """An assumption that makes ``cond`` hold: the condition itself, or for a disjunction its
    most general alternative (``n == m`` rather than ``m == 1``)."""
    if isinstance(cond, sp.And):
        return " and ".join(f'"{_relation_text(c)}"' for c in cond.args)
    if isinstance(cond, sp.Or):
        cond = max(cond.args, key=lambda c: (len(c.free_symbols), -len(sp.sstr(c))))
    return f'"{_relation_text(cond)}"'


def _check_sizes(layer: Layer, source: str) -> None:
    """Refuse a layer that does not exist at every size its assumptions allow.

    Its assumptions must hold together, imply every dimension >= 1 (LANGUAGE.md: every size
    is at least 1) and imply the forward's validity condition (the sizes where NumPy accepts
    the forward): otherwise a claim would be proved or refuted about sizes where the layer
    itself has no meaning. An undecided question is refused too, never assumed.
    """
    found = assumption_contradiction(layer.assumptions, layer.sizes)
    if found:
        raise InputError(found, where=f"{source}: assume")
    facts = [a.cond for a in layer.assumptions if a.kind == "size"]
    for tname, shape in layer.inputs.items():
        for k, d in enumerate(shape):
            _require_size(
                facts, d, layer.sizes, f"dimension {k} ({size_text(d)}) of {tname}", f"{source}: inputs.{tname}"
            )
    where = f"{source}: output.{layer.output}"
    valid = layer.forward.valid
    ok, info = _failing_sizes(facts, valid, layer.sizes)
    if ok is None:
        raise InputError(
            f"cannot decide whether the forward is defined for all sizes the layer allows ({info}); "
            f"state its condition {_relation_text(valid)} as assumptions",
            where=where,
        )
    if ok is False:
        raise InputError(
            f"the forward is not defined for all sizes the layer allows (e.g. {_at(info)}); "
            f"add an assumption such as {_assumption_hint(valid)}",
            where=where,
        )
    for k, d in enumerate(layer.forward.shape):
        _require_size(facts, d, layer.sizes, f"dimension {k} ({size_text(d)}) of the output", where)


def _require_size(facts, dim, sizes, what: str, where: str) -> None:
    ok, info = _failing_sizes(facts, sp.Ge(dim, 1), sizes)
    if ok is None:
        raise InputError(
            f"cannot decide whether {what} is at least 1 for all sizes the layer allows ({info})", where=where
        )
    if ok is False:
        raise InputError(
            f"{what} can be less than 1 (e.g. {_at(info)}), but every size is at least 1; "
            f"add an assumption such as {_at_least_one(dim)}",
            where=where,
        )


def _at_least_one(dim) -> str:
    """``dim >= 1`` spelled as a user would (``"n - k + 1 >= 1"`` as ``"n >= k"``)."""
    terms = sp.Add.make_args(sp.expand(dim - 1))
    left = sp.Add(*(t for t in terms if t.as_coeff_Mul()[0] > 0))
    right = -sp.Add(*(t for t in terms if t.as_coeff_Mul()[0] < 0))
    return f'"{size_text(left)} >= {size_text(right)}"'


def assumption_contradiction(assumptions, sizes) -> str:
    """Why ``assumptions`` cannot hold together (with every size >= 1), or ``""`` where they can.

    Size conditions are decided by z3 over the integers (undecided is reported, never taken
    as consistent). Value conditions between plain tensors, sums of one tensor and numbers
    (``x > 0``, ``eps <= x``, ``sum(t) == 1``) are decided over the reals with one number
    per tensor, its first element: every elementwise condition holds there (each tensor has
    one, all sizes being >= 1), so no such numbers means no tensor values. Other value
    conditions (``w == w.T``) are left out, which can only miss a contradiction.

    >>> n = sp.Symbol("n", integer=True, positive=True)
    >>> assumption_contradiction([Assumption("n >= 3", "size", sp.Ge(n, 3))], [n])
    ''
    >>> zero = Num(sp.S(0))
    >>> positive = Assumption("x > 0", "sign", lhs=Ref("x"), rhs=zero, rel=">")
    >>> assumption_contradiction([positive, Assumption("x < 0", "sign", lhs=Ref("x"), rhs=zero, rel="<")], [n])
    'the assumptions "x > 0", "x < 0" contradict each other: no tensor values satisfy them all'
    """
    size = [a for a in assumptions if a.kind == "size"]
    ok, info = _failing_sizes([a.cond for a in size], sp.false, sizes)
    if ok is True:
        return f"the assumptions {_quoted(a.text for a in size)} contradict each other: no sizes >= 1 satisfy them all"
    if ok is None:
        return f"cannot decide whether the assumptions {_quoted(a.text for a in size)} can hold together ({info})"
    relations = _value_relations(assumptions)
    if relations:
        solver = domains.new_solver(LAYER_RLIMIT)
        solver.add(*relations)
        if solver.check() == z3.unsat:
            texts = _quoted(a.text for a in assumptions if a.kind != "size")
            return f"the assumptions {texts} contradict each other: no tensor values satisfy them all"
    return ""


_Z3_RELATIONS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _value_relations(assumptions) -> list:
    """The z3 relations of the value assumptions between plain tensors, sums of a tensor and
    numbers; other value assumptions are left out (fewer conditions: a contradiction found
    without them is one with them)."""
    sums: dict = {}
    out = [_value_relation(a, sums) for a in assumptions if a.kind != "size"]
    # a sum of elements that are all < 0 (<= 0, == 0, ...) is too: each sum has an element
    for a in assumptions:
        if a.kind == "size" or a.rel not in ("<", "<=", ">", ">=", "=="):
            continue
        for (name, _), total in sums.items():
            if {_value_key(a.lhs), _value_key(a.rhs)} == {("ref", name), ("num", 0)}:
                swap = [(z3.Real(name), total)]
                out.append(z3.substitute(_value_relation(a, {}), *swap))
    return [r for r in out if r is not None]


def _value_key(node):
    if isinstance(node, Ref):
        return ("ref", node.name)
    if isinstance(node, Num) and sp.sympify(node.value).is_zero:
        return ("num", 0)
    return None


def _value_relation(a: Assumption, sums: dict):
    lhs, rhs = _value_term(a.lhs, sums), _value_term(a.rhs, sums)
    rel = _Z3_RELATIONS.get(a.rel or "==")
    if lhs is None or rhs is None or rel is None:
        return None
    return rel(lhs, rhs)


def _value_term(node, sums: dict):
    """One real for a plain tensor (its first element) or for a ``sum`` of one (its first
    entry, for any ``axis``; recorded in ``sums``), a number, or None."""
    if isinstance(node, Ref):
        return z3.Real(node.name)
    if isinstance(node, Num):
        v = sp.sympify(node.value)
        return z3.RealVal(str(sp.Rational(v))) if (v.is_Rational or v.is_Float) else None
    if isinstance(node, Call) and node.op == "negative" and len(node.args) == 1:
        inner = _value_term(node.args[0][1], sums)
        return None if inner is None else -inner
    if isinstance(node, Call) and node.op == "sum":
        args = dict(node.args)
        if not isinstance(args.get("a"), Ref) or any(args.get(k) is not None for k in ("dtype", "out")):
            return None
        key = (args["a"].name, str(args.get("axis")))
        return sums.setdefault(key, z3.Real(f"sum({key[0]}, axis={key[1]})"))
    return None


def require_concrete(layer: Layer, what: str) -> Layer:
    """The layer, or an input error when it declares abstract functions, which ``what`` (code
    generation, checking implementations, ...) cannot run: they have no value.

    >>> require_concrete(load_layer("linear"), "code generation").name
    'linear'
    """
    if layer.functions:
        names = ", ".join(layer.functions)
        raise InputError(
            f"{what} needs concrete functions, but layer {layer.name!r} leaves {names} abstract "
            f"(functions = [...]: no value to compute); write the activation itself (tanh(...), "
            f"sigmoid(...), ...) in place of {layer.functions[0]}",
            where=layer.source or layer.name,
        )
    return layer


def check_extra_assumptions(layer: Layer, extra, where: str = "--assume") -> None:
    """Raise an input error if the extra assumptions contradict each other or the layer's.

    A claim "proved" under assumptions that cannot hold would be proved about nothing.

    >>> check_extra_assumptions(load_layer("linear"), [])
    """
    extra = list(extra)
    if not extra:
        return
    alone = assumption_contradiction(extra, layer.sizes)
    if alone:
        raise InputError(alone, where=where)
    together = assumption_contradiction([*layer.assumptions, *extra], layer.sizes)
    if together:
        own = _quoted(a.text for a in layer.assumptions) or "none besides every size >= 1"
        why = together.rsplit(": ", 1)[-1] if together.startswith("the assumptions") else together
        raise InputError(
            f"{_quoted(a.text for a in extra)} contradicts the layer's assumptions ({own}): {why}",
            where=where,
        )


# -- showing ---------------------------------------------------------------------------
def _readable(expr: sp.Expr, facts=()) -> sp.Expr:
    """For display: summation dummies as plain distinct symbols, conditions the assumptions give as true."""
    taken = {s.name for s in expr.free_symbols if not isinstance(s, sp.Dummy)}
    names = {}
    for d in sorted(expr.atoms(sp.Dummy), key=lambda d: d.dummy_index):
        name = d.name
        k = 0
        while name in taken:
            k += 1
            name = f"{d.name}{k}"
        taken.add(name)
        names[d] = sp.Symbol(name, integer=True)
    out = expr.xreplace(names)
    true = {}
    for f in facts:
        if isinstance(f, sp.Rel):
            true[f] = sp.true
            true[f.reversed] = sp.true
    return out.xreplace(true) if true else out


def describe_layer(layer: Layer) -> str:
    """What ``symderive show LAYER`` prints: tensors, sizes, assumptions, forward, claims.

    >>> print(describe_layer(load_layer("linear")).splitlines()[0])
    layer linear
    """
    lines = [f"layer {layer.name}"]
    if layer.description:
        lines.append(f"  {layer.description}")
    lines.append("inputs:")
    for n, shape in layer.inputs.items():
        note = "  (constant)" if n in layer.constants else ""
        lines.append(f"  {n} [{', '.join(plain(d) for d in shape)}]{note}")
    lines.append(f"sizes: {', '.join(str(s) for s in layer.sizes) or '(none)'} (each >= 1)")
    if layer.assumptions:
        lines.append("assumptions:")
        lines.extend(f"  {a.text}" for a in layer.assumptions)
    if layer.constants:
        lines.append(f"constants: {', '.join(layer.constants)}")
    if layer.functions:
        primes = ", ".join(f"{f}_prime" for f in layer.functions)
        lines.append(f"functions: {', '.join(layer.functions)} (abstract, elementwise; derivatives {primes})")
    facts = layer.size_assumptions()
    if layer.intermediates:
        lines.append("intermediates:")
        for i in layer.intermediates:
            shape = ", ".join(plain(_readable(d, facts)) for d in i.tensor.shape)
            lines.append(f"  {i.name} [{shape}] = {i.text}")
    out_shape = ", ".join(plain(_readable(d, facts)) for d in layer.forward.shape)
    kind = "loss" if layer.is_loss else "output"
    lines.append(f"{kind}: {layer.output} [{out_shape}]")
    if layer.forward_tree is not None:
        lines.append(f"  {layer.output} = {layer.forward_text}")
    else:
        lines.append(f"  defined as: {layer.forward_text}")
    idx = fresh_indices("i", layer.forward.ndim) if layer.forward.ndim else ()
    element = _readable(layer.forward.element(idx), facts)
    left = f"{layer.output}[{', '.join(map(str, idx))}]" if idx else layer.output
    lines.append(f"  {left} = {plain(element)}")
    if idx:
        ranges = ", ".join(
            f"0 <= {i} <= {plain(_readable(d - 1, facts))}" for i, d in zip(idx, layer.forward.shape, strict=False)
        )
        lines.append(f"  for {ranges}")
    if not layer.is_loss:
        lines.append(f"  loss: sum(g * {layer.output}), g [{out_shape}] the upstream gradient")
    if layer.claims:
        lines.append("known claims:")
        for c in layer.claims:
            extra = f"  assuming {', '.join(c.assume)}" if c.assume else ""
            expect = f"  (expected {c.expect})" if c.expect != "proved" else ""
            lines.append(f"  d{c.wrt}: {c.claim}{extra}{expect}")
    return "\n".join(lines)
