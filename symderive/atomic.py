"""Output files written whole or not at all.

Every file symderive writes (an emitted module and its tests, a report) goes through
:func:`write_atomic`: the data goes to a temporary file in the same folder, which then
replaces the target in one ``os.replace``. A run that fails (a refuted claim, a LaTeX error,
a full disk, Ctrl-C) leaves an existing file as it was and no temporary file behind.

This module imports nothing from symderive.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _current_umask() -> int:
    # read by setting it (there is no other portable way) and setting it back at once
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` through a temporary file in its folder and a rename.

    A symbolic link is written through (its target is replaced), and an existing file keeps
    its permission bits; a new one gets the usual ones (0o666 less the umask). Raises
    ``OSError`` (the target untouched, the temporary file removed) when anything fails.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "m.py", "x = 1\\n").read_text()
    'x = 1\\n'
    """
    target = Path(os.path.realpath(path))
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: spelled alike after resolving ``.``, ``..`` and links, or one inode.

    >>> same_file("m.py", "./m.py"), same_file("m.py", "n.py")
    (True, False)
    """
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


__all__ = ["same_file", "write_atomic"]
