"""Prove: derived gradient + claim -> Verdict (proved | refuted | unknown).

(Being written by the lead. The signature below is the contract.)
"""

from __future__ import annotations

from .verdict import UNKNOWN, Verdict


def prove(layer, wrt: str, claim: str, assume=(), timeout: float = 60.0) -> Verdict:
    """Decide whether ``claim`` is the gradient of ``layer``'s loss with respect to ``wrt``.

    ``layer`` is a Layer or a built-in name / path; ``assume`` extra assumption strings.
    Never ``proved`` on anything less than a proof.
    """
    return Verdict(UNKNOWN, wrt=wrt, claim=claim, reason="the all-sizes prover is not written yet")
