"""Regenerate the annotated audits of the example documents: ``python examples/derivations/make.py``.

Writes, next to this file, ``cnn_backprop_notes.audit.{html,md}`` and
``pa5_conv_fc_softmax.centre_flip.audit.{html,md}`` (the write-up read with
``pa5_centre_flip.toml``), and with ``--pdf`` the PDFs too (LaTeX needed; they are not kept in
the repository). tests/audit/test_examples.py checks that the committed HTML and Markdown are
what this script writes today.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from symderive.audit.check import audit
from symderive.render.audit import audit_document

HERE = Path(__file__).resolve().parent
#: (document, notation file or None, the outputs' stem)
AUDITS = (
    ("cnn_backprop_notes.md", None, "cnn_backprop_notes.audit"),
    ("pa5_conv_fc_softmax.md", "pa5_centre_flip.toml", "pa5_conv_fc_softmax.centre_flip.audit"),
)
SUFFIXES = (".html", ".md")


def outputs(document: str, notation: str | None, suffixes=SUFFIXES) -> dict[str, bytes]:
    """The annotated audit of one example, by suffix."""
    result = audit(HERE / document, notation=HERE / notation if notation else None)
    # the document is named as the README's commands name it (run in this folder)
    result = replace(result, source=document)
    return {suffix: audit_document(result, suffix) for suffix in suffixes}


def main(argv: list[str]) -> int:
    suffixes = SUFFIXES + ((".pdf",) if "--pdf" in argv else ())
    for document, notation, stem in AUDITS:
        for suffix, data in outputs(document, notation, suffixes).items():
            (HERE / f"{stem}{suffix}").write_bytes(data)
            print(f"wrote {stem}{suffix}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
