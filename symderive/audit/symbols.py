"""What a layer names, as far as reading a document needs it: tensors, their ranks, sizes.

The reader does not build the layer (that is the decision side's work); it reads the layer's
TOML file for the names only. A caller that has the built layer can pass its own
:class:`LayerSymbols` instead (``read_document(..., layers=...)``).

>>> conv = load_layer_symbols("conv2d")
>>> conv.output, conv.rank("x"), conv.rank("b"), sorted(conv.sizes)
('y', 2, 0, ['H', 'W', 'kh', 'kw'])
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from symderive.errors import InputError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_BUILTIN = Path(__file__).resolve().parents[1] / "layers"


@dataclass(frozen=True)
class LayerSymbols:
    """A layer's names: ``shapes`` maps each tensor (inputs, intermediates, output) to its
    shape as size expressions, or None when the reader cannot know it (a closed-form
    output); ``ranks`` maps each tensor to its rank, or None.

    >>> LayerSymbols("t", shapes={"x": ("n",)}, ranks={"x": 1}, sizes=frozenset({"n"})).rank("x")
    1
    """

    name: str
    shapes: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    ranks: dict[str, int | None] = field(default_factory=dict)
    sizes: frozenset[str] = frozenset()
    output: str = "y"
    inputs: tuple[str, ...] = ()
    intermediates: tuple[str, ...] = ()
    constants: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    #: the claim-language formulas of the output and intermediates, (name, formula)
    formulas: tuple[tuple[str, str], ...] = ()

    @property
    def is_loss(self) -> bool:
        """True for a loss layer (its output is the scalar L).

        >>> load_layer_symbols("softmax_cross_entropy").is_loss
        True
        """
        return self.output == "L"

    def rank(self, name: str) -> int | None:
        """The rank of tensor ``name``, None when unknown or not a tensor.

        >>> load_layer_symbols("linear").rank("w")
        2
        """
        return self.ranks.get(name)

    def is_tensor(self, name: str) -> bool:
        """True when ``name`` is one of the layer's tensors (input, intermediate, output).

        >>> load_layer_symbols("linear").is_tensor("y"), load_layer_symbols("linear").is_tensor("n")
        (True, False)
        """
        return name in self.ranks

    def with_intermediates(self, names: dict[str, int | None]) -> LayerSymbols:
        """A copy with more intermediates (a notation block's ``[intermediates]``).

        >>> load_layer_symbols("linear").with_intermediates({"z": 1}).rank("z")
        1
        """
        ranks = {**self.ranks, **names}
        shapes = {**self.shapes, **dict.fromkeys(names)}
        return LayerSymbols(
            self.name,
            shapes,
            ranks,
            self.sizes,
            self.output,
            self.inputs,
            self.intermediates + tuple(names),
            self.constants,
            self.functions,
            self.formulas,
        )


def layer_path(spec: str, base: Path | None) -> Path:
    """The TOML file of a layer given by built-in name or by path (relative to ``base``).

    >>> layer_path("linear", None).name
    'linear.toml'
    """
    if "/" in spec or spec.endswith(".toml"):
        path = Path(spec)
        return path if path.is_absolute() or base is None else base / path
    return _BUILTIN / f"{spec}.toml"


def load_layer_symbols(spec: str, base: Path | None = None) -> LayerSymbols:
    """The names of the layer ``spec`` (a built-in name or a TOML path), read from its file.

    >>> load_layer_symbols("softmax_cross_entropy").constants
    frozenset({'t'})
    """
    path = layer_path(spec, base)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"unknown layer {spec!r}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"cannot read layer file {path}: {err}") from None
    return _symbols_of(spec, data)


def _symbols_of(spec: str, data: dict) -> LayerSymbols:
    inputs = data.get("inputs", {})
    output = data.get("output", {})
    if not isinstance(inputs, dict) or not isinstance(output, dict):
        raise InputError(f"layer {spec!r}: [inputs] and [output] must be tables")
    shapes: dict[str, tuple[str, ...] | None] = {}
    for name, shape in inputs.items():
        shapes[name] = tuple(str(s) for s in shape) if isinstance(shape, list) else None
    ranks: dict[str, int | None] = {n: (len(s) if s is not None else None) for n, s in shapes.items()}
    intermediates = data.get("intermediates", {}) if isinstance(data.get("intermediates", {}), dict) else {}
    for name, formula in intermediates.items():
        shapes[name] = None
        ranks[name] = _index_form_rank(name, formula)
    out_names = [k for k in output if k != "shape"]
    out = out_names[0] if out_names else "y"
    out_shape = output.get("shape")
    shapes[out] = tuple(str(s) for s in out_shape) if isinstance(out_shape, list) else None
    ranks[out] = (
        0 if out == "L" else (len(shapes[out]) if shapes[out] is not None else _index_form_rank(out, output.get(out)))
    )
    sizes = {tok for shape in shapes.values() if shape for s in shape for tok in _IDENTIFIER.findall(s)}
    functions = data.get("functions", [])
    return LayerSymbols(
        name=str(data.get("name", spec)),
        shapes=shapes,
        ranks=ranks,
        sizes=frozenset(sizes),
        output=out,
        inputs=tuple(inputs),
        intermediates=tuple(intermediates),
        constants=frozenset(data.get("constants", [])),
        functions=frozenset(functions if isinstance(functions, list) else []),
        formulas=tuple((n, f) for n, f in [*intermediates.items(), (out, output.get(out))] if isinstance(f, str)),
    )


def _index_form_rank(name: str, formula: object) -> int | None:
    """The rank an index-form formula gives its left side (``y[i, j] == ...``: 2), else None."""
    if not isinstance(formula, str):
        return None
    match = re.match(rf"\s*{re.escape(name)}\s*\[([^\]]*)\]\s*==?", formula)
    return len(match.group(1).split(",")) if match else None
