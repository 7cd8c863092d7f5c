"""The two kinds of failure a user can see.

:class:`InputError` -- the user's mistake (exit status 2, one line naming what and where).
:class:`InternalError` -- a bug of symderive (exit status 70), e.g. the symbolic proof and
the concrete second check disagree.
"""

from __future__ import annotations


class InputError(ValueError):
    """A user mistake: bad claim syntax, unknown layer, malformed layer file ...

    >>> str(InputError("unknown name 'q'", where="claim, column 5"))
    "claim, column 5: unknown name 'q'"
    """

    def __init__(self, message: str, where: str = ""):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class InternalError(RuntimeError):
    """A bug of symderive, never a verdict.

    >>> str(InternalError("proof and concrete check disagree"))
    'internal error (a bug in symderive): proof and concrete check disagree'
    """

    def __init__(self, message: str):
        super().__init__(f"internal error (a bug in symderive): {message}")
