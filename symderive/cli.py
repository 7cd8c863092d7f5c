"""The command line (LANGUAGE.md, "Command line").

``main(argv, prog)`` runs one command and returns its exit status; ``entrypoint()`` is
the console script. Exit statuses: 0 all proved (or done), 1 some claim refuted (or an
implementation differs), 3 some unknown, 2 an input error (one line on stderr, never a
traceback), 70 an internal error (a bug of symderive). Where several apply, the first
of 70, 2, 1, 3 wins.

Library modules are imported inside the command functions, so that each command works
as soon as what it needs exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import gc
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import __version__
from .clock import MAX_SECONDS, ClaimTimeout, wall_clock
from .decide.verdict import ERROR, PROVED, REFUTED, UNKNOWN, Verdict
from .errors import InputError, InternalError
from .render.text import format_verdict

EXIT_OK, EXIT_REFUTED, EXIT_INPUT, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 70
DEFAULT_TIMEOUT = 60.0

#: marks an argument that starts with "-" but is a value (a claim such as "-w.T @ g")
_VALUE_MARK = "\x00"
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_LONG_OPTION = re.compile(r"^--[A-Za-z][A-Za-z0-9_-]*$")


# -- exit statuses ---------------------------------------------------------------------
_STATUS_OF_VERDICT = {PROVED: EXIT_OK, REFUTED: EXIT_REFUTED, UNKNOWN: EXIT_UNKNOWN, ERROR: EXIT_INPUT}


def combined_status(statuses: Sequence[int]) -> int:
    """The exit status of several results: the first of 70, 2, 1, 3 that occurs, else 0.

    >>> combined_status([0, 3, 1]), combined_status([3, 2, 1]), combined_status([])
    (1, 2, 0)
    """
    for status in (EXIT_INTERNAL, EXIT_INPUT, EXIT_REFUTED, EXIT_UNKNOWN):
        if status in statuses:
            return status
    return EXIT_OK


def verdict_status(verdict: Verdict) -> int:
    """The exit status ``prove`` gives one verdict.

    >>> verdict_status(Verdict("refuted"))
    1
    """
    return _STATUS_OF_VERDICT.get(verdict.verdict, EXIT_INTERNAL)


# -- argument parsing -----------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are InputErrors (one line, exit 2)."""

    def error(self, message):
        # "symderive prove" -> "prove": main() already prefixes the program's name
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        # a value marked by _protect_values is quoted as the user typed it, without the mark
        raise InputError(" ".join(message.replace(_VALUE_MARK, "").split()), where=command)


def _timeout_value(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise ValueError(text)
    return value


_timeout_value.__name__ = f"timeout (positive seconds, at most {MAX_SECONDS:g})"


def _tolerance_value(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


_tolerance_value.__name__ = "tolerance (a finite number >= 0)"


def _seed_value(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_seed_value.__name__ = "seed (an integer >= 0)"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=_timeout_value,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="wall-clock guard per claim (default %(default)s); when it runs out the verdict is unknown",
    )


def _add_claims_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--claim",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "CLAIM"),
        help="a claim for the gradient with respect to input NAME (repeatable; default: the layer's own claims)",
    )


def main_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``symderive`` and its subcommands.

    >>> sorted(main_parser().parse_args(["layers"]).__dict__)[:2]
    ['command', 'timeout']
    """
    parser = _Parser(
        prog=prog or "symderive",
        description="Check the calculus of neural-network backpropagation: derive, prove, emit NumPy, report.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("layers", help="list the built-in layers", allow_abbrev=False)
    _add_common(p)

    p = sub.add_parser("functions", help="the functions a claim may use", allow_abbrev=False)
    p.add_argument("name", metavar="NAME", nargs="?", help="one function (as a claim spells it, e.g. F.softplus)")

    p = sub.add_parser("show", help="a layer's forward pass in index form", allow_abbrev=False)
    p.add_argument("layer", metavar="LAYER", help="a built-in layer name or a path to a TOML file")
    p.add_argument("--toml", action="store_true", help="print the layer's file, to copy and change")
    _add_common(p)

    p = sub.add_parser("prove", help="prove or refute a gradient claim", allow_abbrev=False)
    p.add_argument("layer", nargs="?", metavar="LAYER", help="a built-in layer name or a path to a TOML file")
    p.add_argument("claim", nargs="?", metavar="CLAIM", help="the claimed gradient (closed or index form)")
    p.add_argument("--wrt", metavar="NAME", help="the input the gradient is taken with respect to")
    p.add_argument(
        "--identity", metavar="'LHS == RHS'", help="prove or refute an identity over the layer's tensors instead"
    )
    p.add_argument("--assume", action="append", default=[], metavar="EXPR", help="an extra assumption (repeatable)")
    p.add_argument("--batch", metavar="FILE.json", help="prove every claim of a JSON batch file")
    jobs_help = "--batch claims at a time, in processes (default: cores)"
    p.add_argument("--jobs", type=_jobs_value, default=None, metavar="N", help=jobs_help)
    p.add_argument("--json", action="store_true", help="one JSON object per claim, one per line")
    p.add_argument("--why", action="store_true", help="for a refuted claim, also its nearest proved variants")
    _add_common(p)

    p = sub.add_parser("solve", help="the simplest proved closed forms of a gradient", allow_abbrev=False)
    p.add_argument("layer", metavar="LAYER")
    p.add_argument("--wrt", required=True, metavar="NAME")
    p.add_argument("--json", action="store_true", help="one JSON object per closed form, one per line")
    _add_common(p)

    p = sub.add_parser("derive", help="the derivation, step by step", allow_abbrev=False)
    p.add_argument("layer", metavar="LAYER")
    p.add_argument("--wrt", required=True, metavar="NAME")
    _add_common(p)

    p = sub.add_parser("codegen", help="NumPy, PyTorch or JAX code from proved claims", allow_abbrev=False)
    p.add_argument("layer", metavar="LAYER")
    _add_claims_option(p)
    p.add_argument(
        "--target",
        choices=("numpy", "torch", "jax"),
        default="numpy",
        help="the emitted module's framework: numpy (default), torch (a torch.library.custom_op), jax (a jax.custom_vjp)",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE.py")
    p.add_argument("--tests", metavar="FILE.py", help="also write a pytest module checking the emitted code")
    _add_common(p)

    p = sub.add_parser(
        "report", help="a PDF, LaTeX, Markdown or HTML report of the derivations and proofs", allow_abbrev=False
    )
    p.add_argument("layer", metavar="LAYER")
    _add_claims_option(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE.pdf|FILE.tex|FILE.md|FILE.html")
    p.add_argument("--code", action="store_true", help="add the emitted NumPy module as an appendix")
    _add_common(p)

    p = sub.add_parser("check", help="check backward implementations against the true gradient", allow_abbrev=False)
    p.add_argument("layer", metavar="LAYER")
    p.add_argument("--wrt", required=True, metavar="NAME")
    p.add_argument("--impl", action="append", required=True, metavar="FILE.py:FUNCTION")
    p.add_argument("--rtol", type=_tolerance_value, default=1e-7, metavar="R", help="relative tolerance (>= 0)")
    p.add_argument("--atol", type=_tolerance_value, default=1e-9, metavar="A", help="absolute tolerance (>= 0)")
    p.add_argument("--seed", type=_seed_value, default=0, metavar="N", help="seed of the random values (>= 0)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print the sizes tried and why each was chosen")
    _add_common(p)

    p = sub.add_parser("audit", help="check a derivation document equation by equation", allow_abbrev=False)
    p.add_argument("document", metavar="DOC.md|DOC.tex")
    p.add_argument("--notation", metavar="FILE.toml", help="the document's notation, when it has no block of its own")
    p.add_argument("--json", action="store_true", help="one JSON object per entry")
    p.add_argument("-o", "--output", metavar="OUT", help="the annotated audit: OUT.html, OUT.md, OUT.tex or OUT.pdf")
    p.add_argument(
        "--no-variants", action="store_true", help="do not look for the nearest true variant of a wrong step"
    )
    _add_common(p)

    p = sub.add_parser("grade", help="grade a class of backward implementations", allow_abbrev=False)
    p.add_argument("layer", metavar="LAYER")
    p.add_argument("--wrt", required=True, metavar="NAME")
    p.add_argument("--function", required=True, metavar="F", help="the function each submission defines")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a .py file, a folder of files or of folders (globs work)")
    p.add_argument("--jobs", type=_jobs_value, default=None, metavar="N", help="submissions at a time (default: cores)")
    p.add_argument("--timeout", type=_timeout_value, default=10.0, metavar="S", help="seconds per call (default 10)")
    p.add_argument("--memory", type=_memory_value, default=1024.0, metavar="MB", help="memory per child (default 1024)")
    p.add_argument("-o", "--output", metavar="OUT.csv|OUT.md|OUT.json")
    p.add_argument("--gradescope", metavar="OUT.json", help="Gradescope's results.json (PATH: one file or folder)")
    p.add_argument("--hidden", action="store_true", help="show sizes and differing elements, not the expected array")
    p.add_argument("--seed", type=_seed_value, default=0, metavar="N", help="seed of the random values (>= 0)")
    return parser


def _jobs_value(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_jobs_value.__name__ = "number of jobs (an integer >= 1)"


def _memory_value(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value


_memory_value.__name__ = "memory (megabytes > 0)"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _protect_values(tokens: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Mark arguments that start with "-" but are values, so argparse does not read them as options.

    A claim may start with "-" (``-w.T @ g``): a positional that is not a known option,
    or the value of an option, is a value. Single values of options are joined as
    ``--opt=VALUE``; other values carry an invisible mark that parsing removes again.
    """
    options = parser._option_string_actions
    out: list[str] = []
    pending = 0  # values still owed to the last option
    tokens = list(tokens)
    k = 0
    while k < len(tokens):
        tok = tokens[k]
        if tok == "--":
            out.extend(tokens[k:])
            break
        if pending:
            out.append(_VALUE_MARK + tok if tok.startswith("-") else tok)
            pending -= 1
        elif tok in options:
            nargs = options[tok].nargs
            count = 1 if nargs is None else nargs if isinstance(nargs, int) else 0
            nxt = tokens[k + 1] if k + 1 < len(tokens) else None
            if count == 1 and nxt is not None and nxt.startswith("-") and nxt not in options:
                out.append(f"{tok}={nxt}")
                k += 2
                continue
            out.append(tok)
            pending = count
        elif (
            tok.startswith("-") and len(tok) > 1 and not _NEGATIVE_NUMBER.match(tok) and not _known_joined(tok, options)
        ):
            _refuse_unknown_option(tok, parser)
            out.append(_VALUE_MARK + tok)
        else:
            out.append(tok)
        k += 1
    return out


def _refuse_unknown_option(tok: str, parser: _Parser) -> None:
    """InputError for ``--name`` that is no option of the command (a typo such as ``--jsn``).

    A claim may start with one "-" (``-w.T @ g``), never sensibly with "--name"; read as a
    claim, the typo would be an unknown-name error that hides the misspelt option.
    """
    name = tok.split("=", 1)[0]
    if not _LONG_OPTION.match(name):
        return
    import difflib

    known = sorted(o for o in parser._option_string_actions if o.startswith("--"))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f" (options: {', '.join(known)})"
    parser.error(f"unknown option {name}{hint}")


def _known_joined(tok: str, options) -> bool:
    if "=" in tok and tok.split("=", 1)[0] in options:
        return True
    return not tok.startswith("--") and tok[:2] in options and options[tok[:2]].nargs is None


def _unmark(value):
    if isinstance(value, str):
        return value[len(_VALUE_MARK) :] if value.startswith(_VALUE_MARK) else value
    if isinstance(value, list):
        return [_unmark(v) for v in value]
    return value


def parse_command_line(argv: Sequence[str], prog: str | None = None) -> argparse.Namespace:
    """The parsed arguments of one command line (InputError on a usage error).

    >>> parse_command_line(["prove", "linear", "--wrt", "x", "-w.T@g"]).claim
    '-w.T@g'
    """
    parser = main_parser(prog)
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        # no command: --help, --version, or a usage error
        args = parser.parse_args(argv)
        return args
    subs = _subparsers(parser)
    command = argv[0]
    if command not in subs:
        raise InputError(f"unknown command {command!r} (choose from {', '.join(subs)})")
    sub = subs[command]
    args = sub.parse_intermixed_args(_protect_values(argv[1:], sub))
    for key, value in vars(args).items():
        setattr(args, key, _unmark(value))
    args.command = command
    return args


def is_layer_path(text: str) -> bool:
    """Whether a LAYER argument is a path (it contains "/" or ends in ".toml") rather than a name.

    >>> is_layer_path("conv2d"), is_layer_path("my/layer.toml"), is_layer_path("mine.toml")
    (False, True, True)
    """
    return "/" in text or text.endswith(".toml")


def load(layer_arg: str, base: Path | None = None):
    """The Layer a LAYER argument names; relative paths are taken relative to ``base``."""
    from .layer import load_layer

    target = layer_arg
    if base is not None and is_layer_path(layer_arg) and not Path(layer_arg).is_absolute():
        target = str(base / layer_arg)
    if is_layer_path(target):
        try:
            found = Path(target).is_file()
        except (OSError, ValueError):  # a name the system refuses: too long, a NUL byte
            found = False
        if not found:
            raise InputError(f"no such layer file: {layer_arg}", where="LAYER")
    return load_layer(target)


def _check_wrt(layer, wrt: str | None) -> str:
    if not wrt:
        raise InputError("--wrt NAME is required (the input the gradient is taken with respect to)")
    if wrt not in layer.inputs:
        raise InputError(f"layer {layer.name} has no input {wrt!r} (inputs: {', '.join(layer.inputs)})", where="--wrt")
    return wrt


# -- proving ---------------------------------------------------------------------------
def prove_claim(
    layer_arg: str,
    wrt: str,
    claim: str,
    assume: Sequence[str],
    timeout: float,
    base: Path | None = None,
    loaded: dict | None = None,
) -> Verdict:
    """The verdict on one claim, with the wall-clock guard; InputError for a bad input.

    ``loaded`` (LAYER argument and base -> (Layer, Memo)) lets a batch load each layer once,
    so its claims share the layer's derivations and verdicts.
    """
    from . import prove as prove_api

    key = (layer_arg, str(base))
    try:
        # loading the layer file counts against the claim's time too
        with wall_clock(timeout):
            layer, memo = loaded.get(key, (None, None)) if loaded is not None else (None, None)
            if layer is None:
                layer, memo = load(layer_arg, base), prove_api.Memo()
                if loaded is not None:
                    loaded[key] = (layer, memo)
            _check_wrt(layer, wrt)
            if not isinstance(claim, str) or not claim.strip():
                raise InputError("the claim is empty", where="CLAIM")
            verdict = prove_api.prove(
                layer, wrt, claim, assume=_new_assumptions(layer, assume), timeout=timeout, memo=memo
            )
    except ClaimTimeout:
        verdict = Verdict(UNKNOWN, reason=f"timeout (after {timeout:g} s)")
    if not isinstance(verdict, Verdict):
        raise InternalError(f"prove returned {type(verdict).__name__}, not a Verdict")
    return dataclasses.replace(verdict, layer=layer_arg, wrt=wrt, claim=claim)


def prove_identity_claim(layer_arg: str, identity: str, assume: Sequence[str], timeout: float) -> Verdict:
    """The verdict on one identity ``LHS == RHS`` over a layer, with the wall-clock guard."""
    from . import prove as prove_api

    layer = load(layer_arg)
    try:
        with wall_clock(timeout):
            verdict = prove_api.prove_identity(layer, identity, assume=_new_assumptions(layer, assume), timeout=timeout)
    except ClaimTimeout:
        verdict = Verdict(UNKNOWN, reason=f"timeout (after {timeout:g} s)")
    return dataclasses.replace(verdict, layer=layer_arg, wrt="", claim=identity)


def _new_assumptions(layer, assume: Sequence[str]) -> list[str]:
    """The ``--assume`` texts the layer does not state already, each once: the verdict's list of
    assumptions used names every assumption once (a batch entry often repeats the layer's own)."""
    seen = {a.text.strip() for a in layer.assumptions}
    out = []
    for text in assume:
        if not isinstance(text, str) or text.strip() not in seen:
            out.append(text)
            seen.add(text.strip() if isinstance(text, str) else text)
    return out


def _error_verdict(layer_arg, wrt, claim, message: str) -> Verdict:
    """An ``error`` verdict; layer, wrt and claim are echoed as given (a batch entry's own JSON values)."""
    return Verdict(ERROR, layer=layer_arg, wrt=wrt, claim=claim, reason=message)


class _Entry(dict):
    """A JSON object of a batch file, remembering keys it gave twice (JSON keeps only the last)."""

    duplicates: tuple = ()


def _entry_object(pairs) -> _Entry:
    entry = _Entry(pairs)
    keys = [k for k, _ in pairs]
    entry.duplicates = tuple(sorted({k for k in keys if keys.count(k) > 1}))
    return entry


def _no_constant(name: str):
    # json reads NaN and Infinity, which are not JSON and no claim, assumption or layer
    raise InputError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _read_batch(path_text: str) -> tuple[list, Path]:
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not JSON
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start} cannot be decoded)", where=path_text) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise InputError(f"cannot read batch file: {getattr(exc, 'strerror', None) or exc}", where=path_text) from None
    try:
        entries = json.loads(text, object_pairs_hook=_entry_object, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=path_text
        ) from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply", where=path_text) from None
    except InputError as exc:
        raise InputError(str(exc), where=path_text) from None
    if not isinstance(entries, list):
        raise InputError("a batch file holds a JSON list of claims", where=path_text)
    return entries, path.resolve().parent


BATCH_KEYS = ("layer", "wrt", "claim", "assume")


def _batch_entry(entry, number: int, batch: str):
    """(layer, wrt, claim, assume) of one batch entry; InputError for a bad entry.

    Every key is checked: an unknown one (a typo such as "asume") would otherwise drop
    what it was meant to say and change the verdict.
    """
    import difflib

    where = f"{batch}, entry {number}"
    if not isinstance(entry, dict):
        raise InputError("an entry is a JSON object with layer, wrt, claim (and assume)", where=where)
    unknown = [k for k in entry if k not in BATCH_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], BATCH_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown key {unknown[0]!r}{hint}; an entry has only {', '.join(BATCH_KEYS)}", where=where)
    if getattr(entry, "duplicates", ()):
        raise InputError(f"key {entry.duplicates[0]!r} given twice", where=where)
    missing = [k for k in ("layer", "wrt", "claim") if k not in entry]
    if missing:
        raise InputError(f"missing {', '.join(missing)}", where=where)
    for key in ("layer", "wrt", "claim"):
        if not isinstance(entry[key], str):
            raise InputError(f"{key} must be a string, got {json.dumps(entry[key])}", where=where)
    assume = entry.get("assume", [])
    if not isinstance(assume, list) or not all(isinstance(a, str) for a in assume):
        raise InputError("assume must be a list of strings", where=where)
    return entry["layer"], entry["wrt"], entry["claim"], assume


def _verdicts(args) -> Iterator[tuple[Verdict, int]]:
    """(verdict, exit status) for every claim of a prove command.

    In a batch, an entry's input error becomes an ``error`` verdict and the batch goes on
    (LANGUAGE.md); so does a bug of symderive met on one entry, with status 70, so that the
    other claims still get their verdicts and every line keeps the batch's order.
    """
    if args.identity is not None:
        if args.batch is not None or args.claim is not None or args.wrt or args.layer is None:
            raise InputError("prove LAYER --identity 'LHS == RHS' takes no CLAIM, --wrt or --batch", where="prove")
        verdict = prove_identity_claim(args.layer, args.identity, args.assume, args.timeout)
        yield verdict, verdict_status(verdict)
        return
    if args.batch is None:
        if args.layer is None or args.claim is None:
            raise InputError("prove needs LAYER --wrt NAME CLAIM, or --batch FILE.json", where="prove")
        verdict = prove_claim(args.layer, args.wrt, args.claim, args.assume, args.timeout)
        yield verdict, verdict_status(verdict)
        return
    if args.layer is not None or args.claim is not None or args.wrt or args.assume:
        raise InputError("--batch takes the layers, claims and assumptions from the file only", where="prove")
    entries, base = _read_batch(args.batch)
    jobs = min(args.jobs or default_jobs(), len(entries))
    if jobs > 1:
        yield from _verdicts_in_processes(entries, base, args, jobs)
        return
    loaded = {}
    for number, entry in enumerate(entries, start=1):
        yield batch_verdict(entry, number, args.batch, base, args.timeout, loaded)
        _collect_every(number)


#: a batch run by the console script collects garbage every so many entries (see entrypoint)
BATCH_COLLECT = 100


def _collect_every(count: int) -> None:
    # the console script runs without the automatic collector (see entrypoint): a batch
    # collects after every BATCH_COLLECT entries, in each process that proves them
    if not gc.isenabled() and count % BATCH_COLLECT == 0:
        gc.collect()


def default_jobs() -> int:
    """How many processes ``prove --batch`` uses without ``--jobs``: the cores this process may use.

    >>> default_jobs() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def batch_verdict(entry, number: int, batch: str, base: Path, timeout: float, loaded=None) -> tuple[Verdict, int]:
    """(verdict, exit status) of one batch entry: an input error is an ``error`` verdict, and so is a
    bug of symderive met on it (status 70), so that the other entries still get theirs."""
    where = f"{batch}, entry {number}"
    raw = entry if isinstance(entry, dict) else {}
    try:
        layer_arg, wrt, claim, assume = _batch_entry(entry, number, batch)
        verdict = prove_claim(layer_arg, wrt, claim, assume, timeout, base=base, loaded=loaded)
        return verdict, verdict_status(verdict)
    except InputError as exc:
        message = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        return _error_verdict(raw.get("layer"), raw.get("wrt"), raw.get("claim"), message), EXIT_INPUT
    except Exception as exc:  # noqa: BLE001  (a bug of symderive on this entry; the others still count)
        message = f"{where}: {_internal_message(exc)}; please report it"
        return _error_verdict(raw.get("layer"), raw.get("wrt"), raw.get("claim"), message), EXIT_INTERNAL


def _verdicts_in_processes(entries: list, base: Path, args, jobs: int) -> Iterator[tuple[Verdict, int]]:
    """The batch's (verdict, status) pairs in the file's order, the entries proved by ``jobs`` processes.

    The processes are forked (Linux) once the prover is imported, so each starts warm. The
    entries go out in pieces (:func:`batch_pieces`: claims about one layer together, so that
    a layer is loaded and derived in the process that proves them), the largest first, each
    to the next free process; verdicts are printed in the file's order as soon as the ones
    before them are in. Ctrl-C reaches this process (the children ignore it), which stops
    them at once.
    """
    import multiprocessing

    from . import prove as _prove  # noqa: F401  (imported before the fork: the children share it)

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") and "fork" in methods else None)
    tasks = [(entry, number, args.batch, base, args.timeout) for number, entry in enumerate(entries, start=1)]
    pieces = [[(k, tasks[k]) for k in piece] for piece in batch_pieces(entries, jobs)]
    found: dict = {}
    with context.Pool(jobs, initializer=_batch_child_setup) as pool:
        done = pool.imap_unordered(_batch_piece, pieces, chunksize=1)
        for k in range(len(tasks)):
            while k not in found:
                found.update(next(done))
            yield found.pop(k)


def batch_pieces(entries: list, jobs: int) -> list[list[int]]:
    """The entries' positions in pieces for ``jobs`` processes, largest first: the entries about
    one layer together (in the file's order), a layer with more than a quarter of a process's
    share split, so that the free processes can even out what is left.

    A layer's claims in one process share its loading and derivations (each process would
    otherwise make them again).

    >>> e = [{"layer": n} for n in ("a", "b", "a", "c", "b", "a", "a", "a")]
    >>> batch_pieces(e, 2)
    [[0, 2], [5, 6], [1, 4], [7], [3]]
    """
    size = max(1, -(-len(entries) // (4 * jobs)) * 2)
    groups: dict = {}
    for k, entry in enumerate(entries):
        layer = entry.get("layer") if isinstance(entry, dict) else None
        groups.setdefault(layer if isinstance(layer, str) else ("entry", k), []).append(k)
    pieces = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    return sorted(pieces, key=len, reverse=True)


def _batch_child_setup() -> None:
    import signal

    # Ctrl-C is the parent's to handle (it ends the pool); a child's traceback would only be noise
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _batch_piece(piece: list) -> dict:
    """A batch child's verdicts on one piece: position -> (verdict, status)."""
    out: dict = {}
    loaded: dict = {}  # as in one process: the piece's layer loaded once, its claims sharing a memo
    for count, (position, (entry, number, batch, base, timeout)) in enumerate(piece, start=1):
        try:
            out[position] = batch_verdict(entry, number, batch, base, timeout, loaded)
        except BaseException as exc:  # noqa: BLE001  (an entry that stops its process still gets its line)
            raw = entry if isinstance(entry, dict) else {}
            message = f"{batch}, entry {number}: {_internal_message(exc)}; please report it"
            out[position] = _error_verdict(raw.get("layer"), raw.get("wrt"), raw.get("claim"), message), EXIT_INTERNAL
        _collect_every(count)
    return out


def _internal_message(exc: Exception) -> str:
    """An unexpected exception as a bug of symderive (InternalError's text already says so)."""
    if isinstance(exc, InternalError):
        return str(exc)
    return f"internal error (a bug in symderive): {type(exc).__name__}: {exc}"


def _own_claims_wanted(args) -> bool:
    """Whether ``prove LAYER`` names only a layer: then the layer's own ``[[claims]]`` are proved."""
    return args.layer is not None and args.claim is None and not args.wrt and args.batch is None


def _own_claim_rows(args) -> list[tuple]:
    """(claim entry, verdict) for every ``[[claims]]`` entry of the layer, each with its own wrt and assume."""
    from . import prove as prove_api

    if args.assume:
        raise InputError(
            "prove LAYER proves the layer's own [[claims]] with their own assumptions; "
            "--assume goes with --wrt NAME CLAIM",
            where="prove",
        )
    layer = load(args.layer)
    if not layer.claims:
        raise InputError(f"layer {layer.name} has no [[claims]]; give --wrt NAME CLAIM", where="prove")
    loaded = {(args.layer, str(None)): (layer, prove_api.Memo())}
    return [(c, prove_claim(args.layer, c.wrt, c.claim, c.assume, args.timeout, loaded=loaded)) for c in layer.claims]


def own_claims_table(rows) -> str:
    """The table ``prove LAYER`` prints: claim, wrt, expected, verdict, ok (the verdict is the expected one).

    >>> from symderive.model.layer import KnownClaim
    >>> print(own_claims_table([(KnownClaim("x", "w.T @ g"), Verdict(PROVED))]))
    claim    wrt  expected  verdict  ok
    w.T @ g  x    proved    proved   yes
    """
    table = [("claim", "wrt", "expected", "verdict", "ok")]
    for claim, verdict in rows:
        extra = f" assuming {', '.join(claim.assume)}" if claim.assume else ""
        ok = "yes" if verdict.verdict == claim.expect else "NO"
        table.append((f"{claim.claim}{extra}", claim.wrt, claim.expect, verdict.verdict, ok))
    widths = [max(len(row[k]) for row in table) for k in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)


def cmd_prove_own_claims(args, out, err) -> int:
    """``symderive prove LAYER``: the layer's own claims; 0 when every verdict is the one expected, else 1."""
    rows = _own_claim_rows(args)
    if args.json:
        for claim, verdict in rows:
            print(strict_json({**verdict.to_json(), "expect": claim.expect}), file=out)
    else:
        print(own_claims_table(rows), file=out)
        for claim, verdict in rows:
            if verdict.verdict != claim.expect:
                print(f"\nexpected {claim.expect}:\n{format_verdict(verdict)}", file=out)
    return EXIT_OK if all(v.verdict == c.expect for c, v in rows) else EXIT_REFUTED


def cmd_prove(args, out, err) -> int:
    if args.identity is None and _own_claims_wanted(args):
        return cmd_prove_own_claims(args, out, err)
    statuses = []
    for verdict, status in _verdicts(args):
        statuses.append(status)
        if status == EXIT_INTERNAL:
            print(_one_line(f"symderive: {verdict.reason}"), file=err)
        elif verdict.verdict == ERROR:
            print(_one_line(f"symderive: error: {verdict.reason}"), file=err)
        if args.json:
            print(strict_json(verdict.to_json()), file=out)
        else:
            print(format_verdict(verdict), file=out)
            if args.why and verdict.verdict == REFUTED and not args.batch:
                _print_variants(args, out)
        out.flush()
    return combined_status(statuses)


def _print_variants(args, out) -> None:
    """``prove --why``: the nearest proved variants of a refuted claim, one line each."""
    from .search import nearest_variants

    for variant in nearest_variants(load(args.layer), args.wrt, args.claim, timeout=args.timeout, assume=args.assume):
        print(f"  {variant.explanation}", file=out)


def strict_json(value) -> str:
    """``value`` as strict JSON: a float that is not finite is written as a string.

    >>> strict_json({"claimed": float("nan"), "sizes": {"n": 2}})
    '{"claimed": "nan", "sizes": {"n": 2}}'
    """
    return json.dumps(_finite(value), allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# -- the other commands ------------------------------------------------------------------
def cmd_layers(args, out, err) -> int:
    from .layer import builtin_layer_names

    names = builtin_layer_names()
    from .layer import load_layer

    width = max((len(n) for n in names), default=0)
    broken = []
    for name in names:
        try:
            description = load_layer(name).description
        except InputError as exc:
            # a built-in layer that does not load is symderive's bug; list the others anyway
            broken.append(f"{name} ({exc})")
            description = "(cannot be loaded)"
        print(f"{name.ljust(width)}  {description}".rstrip(), file=out)
    if broken:
        raise InternalError(f"built-in layer(s) fail to load: {'; '.join(broken)}")
    return EXIT_OK


#: the claim syntax that is not an operator of the table: (signature, meaning, example)
CLAIM_SYNTAX = (
    (
        "Sum(body, i, (j, lo, hi), ...)",
        "SymPy's sum over index variables (bounds as docs/claims.md says)",
        "Sum(x[i], i)",
    ),
    ("KroneckerDelta(i, j)", "1 where i == j, else 0", "g[i] * KroneckerDelta(i, j)"),
)


def function_entries() -> list[tuple[str, str, str, str]]:
    """``(name, signature, meaning, example)`` of every function and constant a claim may use,
    read from the operator table.

    >>> [e for e in function_entries() if e[0] == "exp"]
    [('exp', 'exp(x)', 'numpy.exp', 'exp(x)')]
    """
    from .core.ops import CONSTANTS, OPERATORS

    entries = [
        (name, op.signature(), op.library_meaning(), op.example_call()) for name, op in OPERATORS.items() if op.by_name
    ]
    entries += [(name, name, f"numpy.{name} = {float(value)!r}", f"2 * {name}") for name, value in CONSTANTS.items()]
    entries += [(sig.partition("(")[0], sig, meaning, example) for sig, meaning, example in CLAIM_SYNTAX]
    return entries


def cmd_functions(args, out, err) -> int:
    entries = function_entries()
    if args.name is not None:
        chosen = [e for e in entries if e[0] == args.name]
        if not chosen:
            import difflib

            close = difflib.get_close_matches(args.name, [e[0] for e in entries], n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise InputError(f"unknown function {args.name!r}{hint}; symderive functions lists them")
        entries = chosen
    for _, signature, meaning, example in entries:
        print(signature, file=out)
        print(f"    {meaning}", file=out)
        print(f"    e.g. {example}", file=out)
    return EXIT_OK


def cmd_show(args, out, err) -> int:
    from .layer import describe_layer as describe

    layer = load(args.layer)
    if args.toml:
        print(layer_file_text(layer), end="", file=out)
        return EXIT_OK
    print(describe(layer), file=out)
    return EXIT_OK


def layer_file_text(layer) -> str:
    """The text of the file a loaded layer was read from (a built-in layer's TOML file), ending in a newline.

    >>> layer_file_text(load("linear")).startswith('name = "linear"')
    True
    """
    try:
        text = Path(layer.source).read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read layer file: {getattr(exc, 'strerror', None) or exc}", where=layer.source
        ) from None
    return text if text.endswith("\n") else text + "\n"


def cmd_derive(args, out, err) -> int:
    from .core.ir import plain
    from .derive import derive

    layer = load(args.layer)
    _check_wrt(layer, args.wrt)
    with wall_clock(args.timeout):
        derivation = derive(layer, args.wrt)
    for number, step in enumerate(derivation.steps, start=1):
        label = f" [{step.label}]" if step.label else ""
        print(f"{number}. {step.kind}{label}: {step.text}", file=out)
        print(f"     {plain(step.lhs)} = {plain(step.rhs)}", file=out)
    return EXIT_OK


def cmd_solve(args, out, err) -> int:
    """``symderive solve``: 0 when a closed form is proved, 3 when none is found."""
    from .search import solve

    layer = load(args.layer)
    _check_wrt(layer, args.wrt)
    result = solve(layer, args.wrt, timeout=args.timeout)
    if args.json:
        for obj in result.to_json():
            print(strict_json(obj), file=out)
    elif result.found:
        print(f"{layer.name}, d/d{args.wrt}: {len(result.claims)} proved closed form(s), simplest first", file=out)
        for f in result.claims:
            assumed = f" (assuming {', '.join(f.verdict.assumptions)})" if f.verdict.assumptions else ""
            print(f"  {f.claim}\n    proved{assumed}", file=out)
    else:
        print(
            f"{layer.name}, d/d{args.wrt}: no closed form found ({result.candidates} candidates); the index form:",
            file=out,
        )
        print(f"  {result.index_form}", file=out)
    return EXIT_OK if result.found else EXIT_UNKNOWN


def _claims_of(layer, pairs) -> dict[str, str]:
    """codegen's claims: one per input (the emitted module has one gradient function per input).

    Without ``--claim``: for each input, the known claim codegen tries first
    (:func:`symderive.codegen.known_claims`: expected to be proved with no extra assumption,
    the cheapest to run first).
    """
    if pairs:
        claims = {}
        for name, text in pairs:
            _check_wrt(layer, name)
            if name in claims:
                raise InputError(
                    f"two claims for {name!r}: codegen emits one gradient function per input, give one --claim {name}",
                    where="--claim",
                )
            claims[name] = text
        return claims
    from .codegen import known_claims

    firsts = {wrt: known_claims(layer, wrt)[:1] for wrt in layer.differentiable}
    return {wrt: texts[0] for wrt, texts in firsts.items() if texts}


def _report_claims(layer, pairs) -> dict[str, list[str]] | None:
    """report's claims: every ``--claim`` of an input, in order (repeats welcome), or None for all known claims."""
    if not pairs:
        return None
    claims: dict[str, list[str]] = {}
    for name, text in pairs:
        _check_wrt(layer, name)
        claims.setdefault(name, []).append(text)
    return claims


def cmd_codegen(args, out, err) -> int:
    from .codegen import CodegenRefusal, emit_numpy, emit_tests, gather_warnings, solved_claims
    from .prove import Memo

    for path in (args.output, args.tests):
        _require_folder(path, "-o" if path == args.output else "--tests")
    _require_distinct_outputs(args)
    layer = load(args.layer)
    # an input with no claim gets the derived index form, as emit_numpy(layer) gives it
    claims = _claims_of(layer, args.claim)
    memo = Memo()  # the claims, the module and its tests share the loaded layer's proofs
    loaded = {(args.layer, str(None)): (layer, memo)}
    statuses, verdicts = [], {}
    for wrt, text in claims.items():
        verdict = prove_claim(args.layer, wrt, text, (), args.timeout, loaded=loaded)
        status = verdict_status(verdict)
        if status != EXIT_OK:
            if verdict.verdict in (REFUTED, UNKNOWN):
                # what prove would print (the counterexample) says what is wrong with the claim
                print(format_verdict(verdict), file=out)
                out.flush()
            detail = verdict.reason or "see symderive prove"
            print(
                _one_line(
                    f"symderive codegen: claim for {wrt} is {verdict.verdict} ({detail}); not writing {args.output}"
                ),
                file=err,
            )
            statuses.append(status)
        # proved once under the --timeout: emit_numpy need not prove it again (it knows the layer by name)
        verdicts[wrt] = dataclasses.replace(verdict, layer=layer.name)
    if statuses:
        return combined_status(statuses)
    # an input with neither claim gets the closed form solve proves, else gather code with a warning
    # on stderr; the search is bounded by candidate counts (the same module on every machine), and
    # --timeout, the guard per claim, is a safety that warns when it runs out
    per_input = args.timeout
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        claims, verdicts = solved_claims(layer, claims, verdicts, timeout=per_input)
    # (gather code is NumPy's: a framework target refuses an input without a proved claim instead)
    gathers = gather_warnings(layer, claims) if args.target == "numpy" else []
    for message in [str(w.message) for w in caught] + gathers:
        print(_one_line(f"symderive codegen: warning: {message}"), file=err)
    if args.target != "numpy":
        # a framework module from proved claims only (an input without one is refused); its
        # tests embed the cases the module was checked on before it is returned
        try:
            source, tests = _framework_module(args, layer, claims, verdicts, memo)
        except CodegenRefusal as exc:
            print(_one_line(f"symderive codegen: {exc}; not writing {args.output}"), file=err)
            return exc.exit_status
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # said above, once, as the command line says things
            source = emit_numpy(layer, claims=claims, verdicts=verdicts, memo=memo, solve_timeout=None)
        # both texts before either file: a failure leaves the module and its tests as they were; the
        # tests' claims are proved once (memo), and the tests check the very functions of the module
        tests = (
            emit_tests(layer, Path(args.output).stem, claims=claims, memo=memo, solve_timeout=None)
            if args.tests
            else None
        )
    _write(args.output, source)
    print(f"wrote {args.output}", file=out)
    if tests is not None:
        _write(args.tests, tests)
        print(f"wrote {args.tests}", file=out)
    return EXIT_OK


def _framework_module(args, layer, claims, verdicts, memo) -> tuple[str, str | None]:
    """(module, tests or None) of ``codegen --target torch|jax``, or a CodegenRefusal (no proved claim
    for an input, an operator the framework has no lowering for) with its exit status."""
    from .codegen import _prover

    if args.target == "torch":
        from .emit.torch import emit
    else:
        from .emit.jax import emit
    module_name = Path(args.output).stem if args.tests else None
    return emit(layer, module_name, claims, check=True, verdicts=verdicts, prove=_prover(memo))


def cmd_report(args, out, err) -> int:
    from .report import report

    if Path(args.output).suffix.lower() not in (".pdf", ".tex", ".md", ".html"):
        raise InputError(
            f"the report is written as FILE.pdf, FILE.tex, FILE.md or FILE.html, got {args.output!r}", where="-o"
        )
    _require_distinct_outputs(args)
    layer = load(args.layer)
    # without --claim the report shows every claim the layer knows (the known mistakes and
    # those needing assumptions too), as symderive.report.report(layer) does
    report(layer, claims=_report_claims(layer, args.claim), output=args.output, timeout=args.timeout, code=args.code)
    print(f"wrote {args.output}", file=out)
    return EXIT_OK


def _report_ok(rep) -> bool:
    for attr in ("ok", "agrees", "passed"):
        if hasattr(rep, attr):
            return bool(getattr(rep, attr))
    raise InternalError(f"{type(rep).__name__} says neither ok nor agrees")


def _report_json(rep) -> dict:
    if hasattr(rep, "to_json"):
        return rep.to_json()
    if dataclasses.is_dataclass(rep):
        return dataclasses.asdict(rep)
    return {"ok": _report_ok(rep), "summary": str(rep)}


def _report_text(rep, ok: bool) -> str:
    """An implementation's result for people: the summary, and for a failure the counterexample."""
    if not ok and callable(getattr(rep, "details", None)):
        return rep.details()
    return rep.summary() if callable(getattr(rep, "summary", None)) else str(rep)


def _indented(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def cmd_check(args, out, err) -> int:
    from .checking import CaseCache, check_many

    layer = load(args.layer)
    _check_wrt(layer, args.wrt)
    for spec in args.impl:
        if ":" not in spec:
            raise InputError(f"FILE.py:FUNCTION expected, got {spec!r}", where="--impl")
    # the expected gradients are computed once, for every --impl
    cases = CaseCache(layer, args.wrt, args.seed)
    if args.verbose:
        print("sizes tried, smallest first, and why:", file=err if args.json else out)
        print("\n".join(f"  {s.text()}" for s in cases.plan), file=err if args.json else out)
    # one call for all: every --impl is checked for its function before any of them runs,
    # and all run on the same cases
    reports = check_many(
        layer,
        args.wrt,
        list(args.impl),
        rtol=args.rtol,
        atol=args.atol,
        seed=args.seed,
        timeout=args.timeout,
        cases=cases,
    )
    statuses = []
    for spec, rep in zip(args.impl, reports, strict=True):
        ok = _report_ok(rep)
        statuses.append(EXIT_OK if ok else EXIT_REFUTED)
        if args.json:
            print(json.dumps(_report_json(rep), default=str), file=out)
        else:
            print(f"{spec}: {'agrees' if ok else 'DIFFERS'}\n{_indented(_report_text(rep, ok))}", file=out)
    return combined_status(statuses)


def cmd_grade(args, out, err) -> int:
    from .grade import (
        Progress,
        find_submissions,
        format_csv,
        format_json,
        format_markdown,
        format_text,
        grade,
        gradescope_results,
    )

    writers = {".csv": format_csv, ".md": format_markdown, ".json": format_json}
    if args.output is not None and Path(args.output).suffix.lower() not in writers:
        raise InputError(f"the table is written as OUT.csv, OUT.md or OUT.json, got {args.output!r}", where="-o")
    for option, path in (("-o", args.output), ("--gradescope", args.gradescope)):
        _require_folder(path, option)
    if args.gradescope is not None:
        found = find_submissions(args.paths, args.function, True)
        if len(found) != 1:
            raise InputError(
                f"Gradescope's results.json is one submission's, and {len(found)} were found: name one file or folder",
                where="--gradescope",
            )
    layer = load(args.layer)
    _check_wrt(layer, args.wrt)
    result = grade(
        layer,
        args.wrt,
        args.function,
        args.paths,
        jobs=args.jobs,
        timeout=args.timeout,
        memory_mb=args.memory,
        hidden=args.hidden,
        seed=args.seed,
        progress=Progress(err),
        one=args.gradescope is not None,
    )
    print(format_text(result), file=out)
    if args.output is not None:
        _write(args.output, writers[Path(args.output).suffix.lower()](result))
        print(f"wrote {args.output}", file=out)
    if args.gradescope is not None:
        results = gradescope_results(result, result.rows[0])
        _write(args.gradescope, json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.gradescope}", file=out)
    return EXIT_OK if result.all_correct else EXIT_REFUTED


def _require_folder(path: str | None, option: str) -> None:
    """InputError when ``path``'s folder does not exist: said before the claims are proved, not after."""
    if path is None:
        return
    folder = Path(path).parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: the folder {folder} does not exist", where=option)


def _require_distinct_outputs(args) -> None:
    """InputError when an output file is the layer file, or ``-o`` and ``--tests`` are one file
    (however spelled: ``./m.py``, a link), or the tests could not import the module by its name."""
    from .atomic import same_file
    from .escape import identifier_problem

    outputs = [("-o", args.output)] + ([("--tests", args.tests)] if getattr(args, "tests", None) else [])
    for option, path in outputs:
        if is_layer_path(args.layer) and same_file(path, args.layer):
            raise InputError(f"{path} is the layer file itself: writing it would replace the layer", where=option)
    if len(outputs) == 2:
        if same_file(args.output, args.tests):
            raise InputError(
                f"-o and --tests both name {args.tests}: the tests would replace the module", where="--tests"
            )
        problem = identifier_problem(Path(args.output).stem, emitted=False)
        if problem:
            raise InputError(
                f"the tests import the module by its file name {Path(args.output).stem!r}, and {problem}: "
                "name the module NAME.py with NAME a Python identifier",
                where="-o",
            )


def _write(path: str, text: str) -> None:
    from .atomic import write_atomic

    try:
        # whole or not at all: a failed write leaves an earlier file as it was
        write_atomic(path, text)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", where=path) from exc


def cmd_audit(args, out, err) -> int:
    """``symderive audit DOC``: every displayed equation of a derivation document decided
    (DERIVATIONS.md); exit 0 all follow, 1 some does not follow, 3 some unknown/not checked."""
    from .audit.check import audit, format_text
    from .render.audit import check_audit_output, write_audit

    if args.output is not None:
        # a wrong suffix or folder, or the document itself as the output, fails before the (slow) audit
        check_audit_output(args.output)
        _require_not_an_input(args.output, [args.document, args.notation])
    result = audit(args.document, notation=args.notation, timeout=args.timeout, variants=not args.no_variants)
    if args.output is not None:
        _require_not_an_input(args.output, _audit_layer_files(args, result))
        write_audit(result, args.output)
    if args.json:
        for entry in result.entries:
            print(strict_json(entry.to_json()), file=out)
    else:
        print(format_text(result), file=out)
        if args.output is not None:
            print(f"wrote {args.output}", file=out)
    # -o changes what is written, not the verdict: the exit status is the audit's
    return result.exit_status


def _require_not_an_input(output: str, inputs) -> None:
    """InputError when ``output`` names one of the files read (however spelled: ``./x``, a link)."""
    from .atomic import same_file

    for path in inputs:
        if path is not None and Path(path).exists() and same_file(output, path):
            raise InputError(f"{output} is {path}, a file the audit reads: writing it would replace it", where="-o")


def _audit_layer_files(args, result) -> list[str]:
    """The layer files the document's notation named (relative to the notation's folder or the document's)."""
    folders = [Path(p).parent for p in (args.notation, args.document) if p is not None]
    return [str(folder / name) for _, name in result.layers for folder in folders if name.endswith(".toml")]


#: commands bounded as a whole by --timeout (prove counts it per claim, check per implementation)
WHOLE_COMMAND_CLOCK = frozenset({"layers", "show", "derive", "codegen", "report"})
#: errors of writing the output that are the environment's, not symderive's
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EBADF, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EROFS})

COMMANDS = {
    "layers": cmd_layers,
    "functions": cmd_functions,
    "show": cmd_show,
    "prove": cmd_prove,
    "derive": cmd_derive,
    "solve": cmd_solve,
    "codegen": cmd_codegen,
    "report": cmd_report,
    "check": cmd_check,
    "grade": cmd_grade,
    "audit": cmd_audit,
}


# -- entry points ------------------------------------------------------------------------
def _one_line(text: str) -> str:
    """``text`` on one line; a word of hundreds of characters (a path, a literal) is cut in its middle.

    >>> _one_line("no file  /" + "a" * 400)[:30], len(_one_line("x" * 400))
    ('no file /aaaaaaaaaaaaaaaaaaaaa', 163)
    """
    return " ".join(w if len(w) <= 200 else f"{w[:120]}...{w[-40:]}" for w in str(text).split())


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (a test's capture)
        pass


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run one command line; returns the exit status (never raises, never prints a traceback).

    >>> main(["prove"], prog="symderive")
    2
    """
    prog = prog or "symderive"
    argv = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    try:
        if out is None:  # started with stdout closed (`symderive layers >&-`)
            raise OSError(errno.EBADF, "standard output is closed")
        args = parse_command_line(argv, prog)
        if args.command in WHOLE_COMMAND_CLOCK:
            with wall_clock(args.timeout):
                status = COMMANDS[args.command](args, out, err)
        else:
            status = COMMANDS[args.command](args, out, err)
        # written now, so that a full disk is reported here and not at the interpreter's exit
        out.flush()
        return status
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except InputError as exc:
        print(_one_line(f"{prog}: error: {exc}"), file=err)
        return EXIT_INPUT
    except ClaimTimeout:
        print(f"{prog}: timeout: the command did not finish within the --timeout", file=err)
        return EXIT_UNKNOWN
    except InternalError as exc:
        print(_one_line(f"{prog}: {exc}; please report it"), file=err)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=err)
        return 130
    except BrokenPipeError:
        # the reader went away (`symderive ... | head`): what is left to print has nowhere
        # to go, and Python's flush at exit must not report the same pipe again
        _quiet_stdout()
        return 141
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            return _internal(prog, exc, err)
        # stdout cannot take the output (a full disk, a closed descriptor): one line, as
        # `echo > /dev/full` says it; what is still buffered is dropped
        _quiet_stdout()
        print(_one_line(f"{prog}: error: cannot write the output: {exc.strerror or exc}"), file=err)
        return EXIT_INPUT
    except RecursionError:
        print(f"{prog}: error: the input is nested too deeply", file=err)
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001  (anything else is a bug of symderive, reported as such)
        return _internal(prog, exc, err)


def _internal(prog: str, exc: Exception, err) -> int:
    print(
        _one_line(f"{prog}: internal error (a bug in symderive): {type(exc).__name__}: {exc}; please report it"),
        file=err,
    )
    return EXIT_INTERNAL


def entrypoint() -> None:
    """The ``symderive`` console script."""
    # One command is one short process. Importing SymPy and proving allocate a few hundred
    # thousand objects that live to the end, and the collector's repeated passes over them cost
    # about a third of a cold `prove` (0.4-0.6 s CPU): the automatic collector stays off (a
    # batch collects every BATCH_COLLECT entries), and what is left is frozen before the exit,
    # so the interpreter's last collection does not walk it either.
    gc.disable()
    # a console that cannot show a character of the claim echoed back (an ASCII or cp1252
    # stdout) gets an escape for it, not an encoding error reported as a bug of symderive
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # not a text stream that can be reconfigured
            pass
    status = main(sys.argv[1:], prog="symderive")
    gc.freeze()
    sys.exit(status)
