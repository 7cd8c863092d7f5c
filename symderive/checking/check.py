"""Check a user's backward implementation against the derived gradient.

``check_implementation(layer, wrt, impl)`` runs ``impl`` (``"FILE.py:FUNCTION"`` or a
callable) over a sweep of sizes chosen to catch the usual bugs -- the smallest sizes,
a kernel as large as the input, dimensions of 1 next to larger ones, non-square
everything, odd and even sizes -- with random float64 values satisfying the layer's
assumptions, and compares with the derived gradient evaluated concretely. After a
failure the smaller sizes are retried in LANGUAGE.md's minimal order (smallest sum of
sizes, ties in declaration order; at most :data:`MAX_SHRINK_CASES`), and the smallest
failing one is reported with its inputs, the expected and returned arrays and the
differing elements.

Each implementation runs in a child process (``fork`` where the platform has it) with a
time bound per call and a memory bound (``RLIMIT_AS``: ``memory_mb`` more than the
checker already maps), so raising, a wrong shape or dtype, never returning or crashing
the interpreter are reported, never fatal to the checker.

Calling convention (LANGUAGE.md): keyword arguments named after the layer's inputs and
``g``, float64 arrays (0-d for scalars); a function receives the ones its signature
names (``**kwargs`` receives all) and returns the gradient, an array of the input's shape.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

OK, MISMATCH, RAISED, WRONG_SHAPE, WRONG_DTYPE, TIMEOUT, CRASHED = (
    "ok",
    "mismatch",
    "raised",
    "wrong shape",
    "wrong dtype",
    "timeout",
    "crashed",
)
#: size assignments in the sweep at most, and the largest number of scalars in one case
SWEEP_COUNT = 7
MAX_CASE_ELEMENTS = 400
#: arrays of more elements are summarised in ``details()``
MAX_SHOWN_ELEMENTS = 36
#: smaller sizes retried after a failure at most (in minimal order), and how many per child process
MAX_SHRINK_CASES = 60
SHRINK_CHUNK = 8


@dataclass(frozen=True)
class ImplementationReport:
    """What checking one implementation found.

    ``status`` is ``"ok"``, ``"mismatch"``, ``"raised"``, ``"wrong shape"``,
    ``"wrong dtype"``, ``"timeout"`` or ``"crashed"``. For a failure, ``sizes`` are the
    first failing sizes, ``inputs`` the arguments there (nested lists), ``expected`` and
    ``returned`` the two arrays and ``differing`` the indices of the elements that differ.

    >>> ImplementationReport(ok=True, impl="f", status="ok").summary()
    'ok'
    """

    ok: bool
    impl: str
    status: str
    sizes: dict | None = None
    inputs: dict | None = None
    expected: object = None
    returned: object = None
    differing: list = field(default_factory=list)
    message: str = ""
    sizes_tried: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: the status, where, and what."""
        where = f" at sizes {_fmt_sizes(self.sizes)}" if self.sizes else ""
        return f"{self.status}{where}" + (f": {self.message}" if self.message else "")

    def details(self, max_elements: int | None = MAX_SHOWN_ELEMENTS) -> str:
        """The summary, then the counterexample (inputs, expected, returned, differing elements).

        An array of more than ``max_elements`` elements is summarised (its shape, the
        corners and ``...``); ``None`` shows every element.

        >>> rep = ImplementationReport(ok=False, impl="f", status="mismatch", sizes={"n": 1},
        ...                            expected=[1.0], returned=[2.0], differing=[(0,)])
        >>> print(rep.details())
        mismatch at sizes n=1
        expected = [1]
        returned = [2]
        differing elements: [0]
        """
        lines = [self.summary()]
        if self.inputs:
            lines.append("inputs:")
            lines.extend(_named(f"  {n} = ", v, max_elements) for n, v in self.inputs.items())
        if self.expected is not None:
            lines.append(_named("expected = ", self.expected, max_elements))
        if self.returned is not None:
            lines.append(_named("returned = ", self.returned, max_elements))
        if self.differing:
            shown = ", ".join(f"[{', '.join(map(str, i))}]" for i in self.differing[:10])
            more = f" and {len(self.differing) - 10} more" if len(self.differing) > 10 else ""
            lines.append(f"differing elements: {shown}{more}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """One JSON object (for ``check --json``): every field, arrays as nested lists."""
        return {
            "impl": self.impl,
            "ok": self.ok,
            "status": self.status,
            "sizes": self.sizes,
            "inputs": self.inputs,
            "expected": self.expected,
            "returned": self.returned,
            "differing": [list(i) for i in self.differing],
            "message": self.message,
            "sizes_tried": self.sizes_tried,
        }


def _named(prefix: str, value, max_elements: int | None) -> str:
    """``prefix`` then the array, continuation lines indented under its first bracket."""
    text = _format_value(value, max_elements)
    return prefix + text.replace("\n", "\n" + " " * len(prefix))


def _format_value(value, max_elements: int | None) -> str:
    """An array as aligned rows; one of more than ``max_elements`` elements summarised by NumPy."""
    from ..render.text import format_array

    arr = np.asarray(value, dtype=object)
    if max_elements is None or arr.size <= max_elements or arr.ndim == 0:
        return format_array(_short(value))
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):  # complex or other values kept as text
        pass
    with np.printoptions(precision=6, threshold=max_elements, edgeitems=2, linewidth=100):
        text = np.array2string(arr, separator=", ")
    return f"{text}  (shape {_shape_text(arr.shape)})"


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _short(value):
    """Nested floats as 6-significant-digit strings, for reading (JSON keeps every digit)."""
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _fmt_sizes(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) or "(no sizes)"


def format_reports(reports: Sequence[ImplementationReport]) -> str:
    """One line per implementation: ``NAME: STATUS ...``.

    >>> print(format_reports([ImplementationReport(ok=True, impl="a.py:f", status="ok")]))
    a.py:f: ok
    """
    return "\n".join(f"{r.impl}: {r.summary()}" for r in reports)


# -- the cases ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One size assignment of the sweep: the arguments and the expected gradient."""

    sizes: dict
    inputs: dict
    expected: np.ndarray


def _as_layer(layer):
    from ..model.layer import Layer, load_layer

    return layer if isinstance(layer, Layer) else load_layer(layer)


def _check_wrt(layer, wrt: str) -> None:
    if wrt not in layer.inputs:
        raise InputError(f"{wrt!r} is not an input of layer {layer.name} (inputs: {', '.join(layer.inputs)})", "--wrt")
    if wrt in layer.constants:
        raise InputError(f"{wrt!r} is a constant of layer {layer.name}: it is not differentiated", "--wrt")


def _element_count(layer, env) -> int | None:
    from ..decide.concrete import EvaluationError, is_valid_at
    from ..decide.pose import input_shapes

    try:
        if not is_valid_at(layer.forward, env):
            return None
        shapes = input_shapes(layer, env)
    except (EvaluationError, TypeError, ValueError):
        return None
    if any(d < 1 for s in shapes.values() for d in s):
        return None
    return sum(math.prod(s) for s in shapes.values())


def sweep_sizes(layer, count: int = SWEEP_COUNT, max_elements: int = MAX_CASE_ELEMENTS) -> list[dict]:
    """Size assignments that catch the usual bugs, smallest first.

    The smallest allowed sizes; the smallest with every size at least 2; the
    assumptions tight (a kernel as large as the input)
    with sizes above 1; a dimension of 1 next to larger ones; all sizes distinct
    (non-square everything); the largest such; then every size both odd and even (above
    1) where the assumptions allow it. Keys are size names.

    >>> from ..model.layer import load_layer
    >>> sweep_sizes(load_layer("linear"))[0]
    {'n': 1, 'm': 1}
    """
    import sympy as sp

    from ..decide.concrete import Evaluator
    from ..decide.pose import size_candidates

    layer = _as_layer(layer)
    syms = tuple(layer.sizes)
    largest = 6 if len(syms) <= 4 else 4
    rels = [c for c in layer.size_assumptions()[len(syms) :] if isinstance(c, sp.Rel)]
    cands = []
    for env in itertools.islice(size_candidates(layer, max_size=largest), 20000):
        n = _element_count(layer, env)
        if n is None or n > max_elements:
            continue
        ev = Evaluator(env, {})
        tight = sum(1 for c in rels if ev.value(c.lhs) == ev.value(c.rhs))
        cands.append((env, tight))
    if not cands:
        raise InputError(f"no sizes up to {largest} satisfy the assumptions of layer {layer.name}")
    if not syms:
        return [{}]
    target = 3 * len(syms)
    chosen: list[dict] = []

    def pick(key, among=cands):
        rest = [c for c in among if c[0] not in chosen]
        if rest:
            chosen.append(max(rest, key=key)[0])

    def values(c):
        return tuple(c[0].values())

    def minimal(c):  # LANGUAGE.md's order: smallest sum, ties in declaration order
        return (-sum(values(c)), tuple(-v for v in values(c)))

    pick(minimal)
    # every dimension at least 2, as small as possible: a bug that a dimension of 1 hides
    # (a missing mean over a batch of one, a softmax over one class) shows at the smallest size
    pick(lambda c: (min(values(c)) >= 2, *minimal(c)))
    pick(lambda c: (c[1] > 0 and min(values(c)) > 1, c[1], len(set(values(c))), -sum(values(c))))
    pick(lambda c: (0 < values(c).count(1) < len(syms), len(set(values(c))), -abs(sum(values(c)) - target)))
    pick(lambda c: (len(set(values(c))), len({v % 2 for v in values(c)}), -abs(sum(values(c)) - target)))
    pick(lambda c: (len(set(values(c))), sum(values(c))))
    for k, parity in itertools.product(range(len(syms)), (1, 0)):
        if len(chosen) >= count:
            break
        if not any(v > 1 and v % 2 == parity for v in (tuple(e.values())[k] for e in chosen)):
            fits = [c for c in cands if values(c)[k] > 1 and values(c)[k] % 2 == parity]
            pick(lambda c: (len(set(values(c))), -sum(values(c))), among=fits)
    chosen.sort(key=lambda e: (sum(e.values()), tuple(e.values())))
    return [{str(k): int(v) for k, v in env.items()} for env in chosen]


def expected_gradient(layer, wrt: str, sizes: dict, values: dict, derivation=None) -> np.ndarray:
    """The gradient of the loss w.r.t. ``wrt`` in float64: the derived index form, evaluated.

    Falls back to exact differentiation (:func:`symderive.counterexample.true_gradient`)
    where the deriver has no rule. ``derivation`` (``derive(layer, wrt)``) saves deriving again.

    >>> from ..model.layer import load_layer
    >>> lin = load_layer("linear")
    >>> v = {"x": np.ones(2), "w": np.array([[1.0, 2.0]]), "b": np.zeros(1), "g": np.array([3.0])}
    >>> expected_gradient(lin, "x", {"n": 2, "m": 1}, v)
    array([3., 6.])
    """
    from ..calculus.derive import NotDifferentiable
    from ..calculus.present import present as derive
    from ..core.ir import Tensor
    from ..decide.concrete import EvaluationError, evaluate
    from ..decide.pose import true_gradient

    try:
        d = derivation if derivation is not None else derive(layer, wrt)
        tensor = Tensor(
            shape=layer.inputs[wrt], element=lambda idx: d.gradient.xreplace(dict(zip(d.index, idx, strict=True)))
        )
        return evaluate(tensor, sizes, values)
    except (NotDifferentiable, EvaluationError, InputError, TypeError):
        exact = true_gradient(layer, wrt, sizes, {n: np.asarray(v).tolist() for n, v in values.items()})
        return np.vectorize(float, otypes=[np.float64])(exact) if exact.size else exact.astype(np.float64)


def _derivation(layer, wrt: str):
    """``derive(layer, wrt)``, or None where the deriver has no rule (the exact fallback then decides)."""
    from ..calculus.derive import NotDifferentiable
    from ..calculus.present import present as derive

    try:
        return derive(layer, wrt)
    except (NotDifferentiable, InputError, TypeError):
        return None


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"the seed must be an integer >= 0, got {seed!r}", where="--seed")


def build_cases(layer, wrt: str, seed: int = 0, sizes_list: Sequence[dict] | None = None) -> list[Case]:
    """Cases for ``sizes_list`` (default: the sweep): random float64 arguments (assumptions applied), expected gradient.

    Each case's values depend only on ``seed`` and its sizes, so a size retried after a
    failure gets the same values whichever sizes come before it.

    >>> [c.sizes for c in build_cases("linear", "b", sizes_list=[{"n": 2, "m": 3}])]
    [{'n': 2, 'm': 3}]
    """
    from ..emit.codegen import CodegenRefusal, random_values

    _check_seed(seed)
    layer = _as_layer(layer)
    _check_wrt(layer, wrt)
    derivation = _derivation(layer, wrt)
    cases = []
    for sizes in sweep_sizes(layer) if sizes_list is None else sizes_list:
        env = {s: sizes[str(s)] for s in layer.sizes}
        rng = np.random.default_rng([int(seed), *(int(v) for v in sizes.values())])
        try:
            values = random_values(layer, env, rng)
        except CodegenRefusal as exc:
            raise InputError(str(exc), where=layer.source or layer.name) from None
        values = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
        cases.append(Case(dict(sizes), values, expected_gradient(layer, wrt, sizes, values, derivation)))
    return cases


def smaller_sizes(layer, failing: dict, skip: Sequence[dict] = (), limit: int = 0) -> list[dict]:
    """The size assignments before ``failing`` in LANGUAGE.md's minimal order, smallest first.

    Smallest sum of sizes first, ties by the sizes in declaration order; assignments in
    ``skip`` and those over :data:`MAX_CASE_ELEMENTS` scalars are left out; at most
    ``limit`` of them (default :data:`MAX_SHRINK_CASES`).

    >>> smaller_sizes("linear", {"n": 2, "m": 2}, skip=[{"n": 1, "m": 1}])
    [{'n': 1, 'm': 2}, {'n': 2, 'm': 1}, {'n': 1, 'm': 3}]
    """
    from ..decide.pose import size_candidates

    layer = _as_layer(layer)
    target = tuple(int(failing[str(s)]) for s in layer.sizes)
    out: list[dict] = []
    for env in itertools.islice(size_candidates(layer, max_size=max(sum(target), 1)), 20000):
        key = tuple(int(v) for v in env.values())
        if (sum(key), key) >= (sum(target), target) or len(out) >= (limit or MAX_SHRINK_CASES):
            break
        sizes = {str(k): int(v) for k, v in env.items()}
        n = _element_count(layer, env)
        if sizes not in skip and n is not None and n <= MAX_CASE_ELEMENTS:
            out.append(sizes)
    return out


# -- running an implementation in a child process ----------------------------------------------
def _impl_name(impl) -> str:
    if isinstance(impl, str):
        return impl
    return getattr(impl, "__qualname__", None) or getattr(impl, "__name__", None) or repr(impl)


def _split_spec(spec: str) -> tuple[Path, str]:
    if ":" not in spec:
        raise InputError(f"FILE.py:FUNCTION expected, got {spec!r}", where="--impl")
    path, name = spec.rsplit(":", 1)
    if not Path(path).is_file():
        raise InputError(f"no file {path}", where=f"--impl {spec}")
    if not name.isidentifier():
        raise InputError(f"{name!r} is not a function name", where=f"--impl {spec}")
    return Path(path), name


def _load_function(impl) -> Callable:
    """The function named by ``FILE.py:FUNCTION`` (imported in the child), or ``impl`` itself."""
    if callable(impl):
        return impl
    import importlib.util

    path, name = _split_spec(impl)
    sys.path.insert(0, str(path.resolve().parent))
    spec = importlib.util.spec_from_file_location(f"_symderive_impl_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise MissingFunction(f"{path} has no function {name!r}")
    return getattr(module, name)


class MissingFunction(LookupError):
    """``FILE.py:FUNCTION`` names no function of the file (the user's mistake: an input error)."""


def _arguments(fn: Callable, names: Sequence[str]) -> list[str]:
    """The argument names ``fn`` receives: those its signature names, or all with ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return list(names)
    for p in params:
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            # the calling convention passes keyword arguments only (LANGUAGE.md)
            raise TypeError(
                f"its argument {p.name!r} is positional-only (before /), but it is called with keyword "
                f"arguments named after {', '.join(names)}{_definition_site(fn)}"
            )
        unknown = p.name not in names and p.default is p.empty
        if unknown and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(
                f"it takes an argument {p.name!r}, which is none of {', '.join(names)}{_definition_site(fn)}"
            )
    return [p.name for p in params if p.name in names and p.kind is not p.POSITIONAL_ONLY]


def _limit_memory(memory_mb: float) -> None:
    """Cap the address space at ``memory_mb`` MiB more than is mapped now (a forked child shares the checker's)."""
    try:
        import resource
    except ImportError:  # not on this platform: time bound only
        return
    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        mapped = 0
    limit = mapped + int(memory_mb * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _definition_site(fn) -> str:
    """`` (at FILE, line N)`` where ``fn`` is defined, or "" when that is not known."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return ""
    return f" (at {Path(code.co_filename).name}, line {code.co_firstlineno})"


def _user_files(impl, fn) -> set[str]:
    """The files that are the user's: the one ``FILE.py:FUNCTION`` names, and where ``fn`` is defined."""
    files = set()
    if isinstance(impl, str) and ":" in impl:
        files.add(_resolved(impl.rsplit(":", 1)[0]))
    code = getattr(inspect.unwrap(fn), "__code__", None) if fn is not None else None
    if code is not None:
        files.add(_resolved(code.co_filename))
    return files


def _resolved(filename: str) -> str:
    try:
        return str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return filename


def _is_library_file(filename: str) -> bool:
    """Whether a frame is symderive's, or an installed package's or the standard library's (not the user's)."""
    import sysconfig

    here = str(Path(__file__).resolve().parent.parent)
    resolved = _resolved(filename)
    if resolved.startswith(here) or filename.startswith("<"):
        return True
    roots = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(root and resolved.startswith(_resolved(root)) for root in roots)


def _describe_exception(exc: BaseException, impl=None, fn=None) -> str:
    """``Type: message (at FILE, line N)``, where the line is the last one in the user's code.

    The user's file (the one ``impl`` names, or where ``fn`` is defined) wins; then any
    other file that is neither symderive's nor an installed library's; otherwise no place
    is named, since a line inside symderive or NumPy says nothing about the user's bug.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    mine = _user_files(impl, fn)
    frame = next((f for f in reversed(frames) if _resolved(f.filename) in mine), None)
    if frame is None:
        frame = next((f for f in reversed(frames) if not _is_library_file(f.filename)), None)
    where = f" (at {Path(frame.filename).name}, line {frame.lineno})" if frame else ""
    if isinstance(exc, SyntaxError) and exc.filename and frame is None:
        where = f" (at {Path(exc.filename).name}, line {exc.lineno})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def _portable(out) -> tuple:
    """What a call returned, in a form that pickles: ``("array", ndarray)`` or ``("other", description)``."""
    try:
        arr = np.asarray(out)
    except Exception as exc:  # noqa: BLE001  (anything the user returns)
        return ("other", f"a {type(out).__name__} ({type(exc).__name__} converting it to an array)", None)
    if arr.dtype.kind not in "biufc":
        return ("other", f"a {type(out).__name__} of dtype {arr.dtype}", tuple(arr.shape))
    return ("array", np.array(arr), None)


def _child(conn, impl, arguments: list[dict], names: list[str], memory_mb: float) -> None:
    """Runs in the child: load, then call once per case, sending each result as it comes."""
    try:
        os.dup2(2, 1)  # the user's prints must not mix with the checker's (JSON) output
        sys.stdout = sys.stderr
        _limit_memory(memory_mb)
        fn = None
        try:
            fn = _load_function(impl)
            used = _arguments(fn, names)
        except MissingFunction as exc:
            conn.send(("missing", -1, str(exc)))
            return
        except BaseException as exc:  # noqa: BLE001
            conn.send(("load", -1, _describe_exception(exc, impl, fn)))
            return
        conn.send(("loaded", -1, None))
        for k, args in enumerate(arguments):
            try:
                with np.errstate(all="ignore"):
                    out = fn(**{n: args[n].copy() for n in used})
            except BaseException as exc:  # noqa: BLE001  (SystemExit and MemoryError are results too)
                conn.send(("raised", k, _describe_exception(exc, impl, fn)))
                return
            conn.send(("returned", k, _portable(out)))
    finally:
        conn.close()


def _context():
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class _Child:
    """One implementation's child process and the pipe its results come back on."""

    def __init__(self, impl, cases: list[Case], names: list[str], memory_mb: float):
        ctx = _context()
        self.conn, child_conn = ctx.Pipe(duplex=False)
        arguments = [c.inputs for c in cases]
        self.proc = ctx.Process(target=_child, args=(child_conn, impl, arguments, names, memory_mb), daemon=True)
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # fork in a threaded process: the child runs user code only
            self.proc.start()
        child_conn.close()

    def receive(self, timeout: float):
        """The next message, ``("timeout",)`` or ``("crashed", description)``."""
        if not self.conn.poll(timeout):
            return ("timeout",)
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(2)
            return ("crashed", _exit_description(self.proc.exitcode))

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def _exit_description(code) -> str:
    import signal

    if code is None:
        return "the process ended without a result"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process was killed by {name}"
    return f"the process exited with status {code} without returning"


# -- comparing ----------------------------------------------------------------------------------
def _json_array(arr: np.ndarray):
    def num(v):
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, complex):
            return str(v)
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return v

    arr = np.asarray(arr)
    if arr.ndim == 0:
        return num(arr[()])
    return [_json_array(a) for a in arr]


def _failure(impl: str, status: str, case: Case | None, message: str, tried: list, **extra) -> ImplementationReport:
    common = {}
    if case is not None:
        common = {
            "sizes": dict(case.sizes),
            "inputs": {n: _json_array(v) for n, v in case.inputs.items()},
            "expected": _json_array(case.expected),
        }
    return ImplementationReport(
        ok=False, impl=impl, status=status, message=message, sizes_tried=tried, **common, **extra
    )


def _compare(impl: str, case: Case, payload: tuple, rtol: float, atol: float, tried: list):
    """The failure report for one returned value, or None when it agrees."""
    kind, value, shape = payload
    if kind == "other":
        return _failure(impl, WRONG_DTYPE, case, f"returned {value}, expected a float64 array", tried)
    expected = case.expected
    if value.shape != expected.shape:
        return _failure(
            impl,
            WRONG_SHAPE,
            case,
            f"returned shape {value.shape}, expected {expected.shape}",
            tried,
            returned=_json_array(value),
        )
    if value.dtype != np.float64:
        return _failure(
            impl,
            WRONG_DTYPE,
            case,
            f"returned dtype {value.dtype}, expected float64",
            tried,
            returned=_json_array(value),
        )
    close = np.isclose(value, expected, rtol=rtol, atol=atol)
    if close.all():
        return None
    differing = [tuple(int(i) for i in idx) for idx in zip(*np.nonzero(~close), strict=True)] if value.ndim else [()]
    first = differing[0]
    want, got = _distinct_texts(expected[first], value[first])
    # a near miss (6 digits do not tell the two apart) also says by how much the bound is exceeded
    near = f"{expected[first]:.6g}" == f"{value[first]:.6g}"
    message = (
        f"{len(differing)} of {expected.size} elements differ; first at [{', '.join(map(str, first))}]: "
        f"expected {want}, returned {got}{_excess(expected[first], value[first], rtol, atol) if near else ''}"
    )
    return _failure(impl, MISMATCH, case, message, tried, returned=_json_array(value), differing=differing)


def _distinct_texts(a, b) -> tuple[str, str]:
    """Two numbers with as many significant digits (6 to 17) as it takes to tell them apart.

    >>> _distinct_texts(-0.0260238, -0.0260238 * (1 + 2e-7))
    ('-0.02602380', '-0.02602381')
    """
    for digits in range(6, 18):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            return _padded(left, digits), _padded(right, digits)
    return left, right


def _padded(text: str, digits: int) -> str:
    """``text`` with the trailing zeros ``g`` formatting drops, so both numbers show ``digits`` digits."""
    if digits == 6 or "e" in text or "n" in text:
        return text
    shown = len(text.lstrip("-").replace(".", "").lstrip("0"))
    if shown < digits:
        text += ("" if "." in text else ".") + "0" * (digits - shown)
    return text


def _excess(expected, returned, rtol: float, atol: float) -> str:
    """`` (difference d, allowed t)``: how far off a finite element is against NumPy's isclose bound."""
    if not (np.isfinite(expected) and np.isfinite(returned)):
        return ""
    allowed = atol + rtol * abs(expected)
    return f" (difference {abs(returned - expected):.2g}, allowed {allowed:.2g} = atol + rtol * |expected|)"


def run_cases(impl, cases: list[Case], names: list[str], rtol, atol, timeout, memory_mb) -> ImplementationReport:
    """Run one implementation over prepared cases in a child process."""
    name = _impl_name(impl)
    child = _Child(impl, cases, names, memory_mb)
    tried: list = []
    try:
        failure = _loading_failure(name, child.receive(timeout), timeout, memory_mb)
        if failure is not None:
            return failure
        for case in cases:
            msg = child.receive(timeout)
            if msg[0] == "timeout":
                return _failure(name, TIMEOUT, case, f"no result within {timeout:g} s", tried)
            if msg[0] == "crashed":
                return _failure(name, CRASHED, case, msg[1], tried)
            if msg[0] == "raised":
                return _failure(name, RAISED, case, msg[2] + _memory_note(msg[2], memory_mb), tried)
            failure = _compare(name, case, msg[2], rtol, atol, tried)
            if failure is not None:
                return failure
            tried.append(dict(case.sizes))
    finally:
        child.stop()
    return ImplementationReport(
        ok=True,
        impl=name,
        status=OK,
        message=f"agrees at {len(tried)} sizes ({'; '.join(_fmt_sizes(s) for s in tried)})",
        sizes_tried=tried,
    )


def _memory_note(description: str, memory_mb: float) -> str:
    return f" (the memory bound is {memory_mb:g} MB)" if description.startswith("MemoryError") else ""


def _loading_failure(name: str, msg: tuple, timeout: float, memory_mb: float) -> ImplementationReport | None:
    """The report when loading the implementation failed, None once it is loaded; InputError when the function is missing."""
    if msg[0] == "loaded":
        return None
    if msg[0] == "missing":
        raise InputError(msg[2], where=f"--impl {name}")
    if msg[0] == "timeout":
        return _failure(name, TIMEOUT, None, f"loading it took longer than {timeout:g} s", [])
    if msg[0] == "crashed":
        return _failure(name, CRASHED, None, f"{msg[1]} while loading it", [])
    return _failure(name, RAISED, None, f"could not be loaded: {msg[2]}{_memory_note(msg[2], memory_mb)}", [])


def _require_function(impl: str, names: list[str], timeout: float, memory_mb: float) -> None:
    """InputError, before anything runs, when ``FILE.py:FUNCTION`` names no function of the file.

    The file is imported in a child process, like every run of user code.
    """
    child = _Child(impl, [], names, memory_mb)
    try:
        msg = child.receive(timeout)
    finally:
        child.stop()
    if msg[0] == "missing":
        raise InputError(msg[2], where=f"--impl {impl}")


def _argument_names(layer) -> list[str]:
    return list(layer.inputs) + ([] if layer.is_loss else ["g"])


def _check_tolerances(rtol, atol) -> None:
    """InputError unless both tolerances are finite numbers >= 0 (a negative or NaN one fails every comparison)."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}", where=f"--{name}")


def _check_bounds(timeout, memory_mb) -> None:
    for name, value in (("timeout", timeout), ("memory_mb", memory_mb)):
        ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise InputError(f"{name} must be a finite number > 0, got {value!r}", where=f"--{name}")


def check_many(
    layer,
    wrt: str,
    impls: Sequence,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    seed: int = 0,
    timeout: float = 10.0,
    memory_mb: float = 2048,
) -> list[ImplementationReport]:
    """Check several implementations on the same cases (a folder of submissions); one report each.

    >>> # check_many("conv2d", "x", ["alice.py:conv2d_backward_x", "bob.py:conv2d_backward_x"])
    """
    __tracebackhide__ = True  # an input error in a user's test: its line, not symderive's frames
    try:
        return _check_many(layer, wrt, impls, rtol, atol, seed, timeout, memory_mb)
    except InputError as exc:
        raise exc.with_traceback(None) from None


def _check_many(layer, wrt, impls, rtol, atol, seed, timeout, memory_mb) -> list[ImplementationReport]:
    _check_tolerances(rtol, atol)
    _check_seed(seed)
    _check_bounds(timeout, memory_mb)
    layer = _as_layer(layer)
    _check_wrt(layer, wrt)
    for impl in impls:
        if isinstance(impl, str):
            _split_spec(impl)
        elif not callable(impl):
            raise InputError(f"an implementation is FILE.py:FUNCTION or a callable, got {impl!r}", where="--impl")
    names = _argument_names(layer)
    for impl in impls:
        if isinstance(impl, str):
            _require_function(impl, names, timeout, memory_mb)
    cases = build_cases(layer, wrt, seed)
    shrink = _Shrinker(layer, wrt, seed, names, rtol, atol, timeout, memory_mb)
    return [shrink.smallest(run_cases(impl, cases, names, rtol, atol, timeout, memory_mb), impl) for impl in impls]


class _Shrinker:
    """After a failure, the smaller sizes retried in minimal order: the report of the smallest failing one.

    Cases are built once per size assignment and shared by the implementations, and run a
    chunk per child process, so a failure early in the order costs little.
    """

    def __init__(self, layer, wrt, seed, names, rtol, atol, timeout, memory_mb):
        self.layer, self.wrt, self.seed, self.names = layer, wrt, seed, names
        self.run_args = (rtol, atol, timeout, memory_mb)
        self.cases: dict[tuple, Case] = {}

    def _case(self, sizes: dict) -> Case:
        key = tuple(sizes.values())
        if key not in self.cases:
            self.cases[key] = build_cases(self.layer, self.wrt, self.seed, [sizes])[0]
        return self.cases[key]

    def smallest(self, report: ImplementationReport, impl) -> ImplementationReport:
        """``report``, or the failure at the smallest size before its sizes where ``impl`` fails too."""
        if report.ok or not report.sizes:
            return report
        tried = list(report.sizes_tried)
        candidates = smaller_sizes(self.layer, report.sizes, skip=tried)
        for start in range(0, len(candidates), SHRINK_CHUNK):
            chunk = [self._case(s) for s in candidates[start : start + SHRINK_CHUNK]]
            smaller = run_cases(impl, chunk, self.names, *self.run_args)
            tried += smaller.sizes_tried
            if not smaller.ok and smaller.sizes:
                return dataclasses.replace(smaller, sizes_tried=tried)
        return dataclasses.replace(report, sizes_tried=tried)


def check_implementation(
    layer,
    wrt: str,
    impl,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    seed: int = 0,
    timeout: float = 10.0,
    memory_mb: float = 2048,
) -> ImplementationReport:
    """Check one backward implementation (``"FILE.py:FUNCTION"`` or a callable) against the derived gradient.

    ``timeout`` bounds each call (seconds), ``memory_mb`` what the child may allocate.

    >>> import numpy as np
    >>> check_implementation("linear", "b", lambda g: np.array(g)).status
    'ok'
    """
    __tracebackhide__ = True
    return check_many(layer, wrt, [impl], rtol=rtol, atol=atol, seed=seed, timeout=timeout, memory_mb=memory_mb)[0]
