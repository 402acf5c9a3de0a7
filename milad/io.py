"""Writing files safely: all or nothing, and output paths checked before any work.

:func:`atomic_output` writes through a temporary file in the target's directory and renames it
over the target only once everything is written, so a crash, a full disk or a file-size limit
never leaves a truncated file under the real name. :func:`check_output_path` refuses an output
path that cannot work (a directory, a missing or read-only folder, a wrong suffix) before the
work that would fill it starts.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["OutputPathError", "atomic_output", "atomic_write_bytes", "check_output_path"]


class OutputPathError(ValueError):
    """An output path that cannot be written (named in the message)."""


@contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """An open temporary file in ``path``'s folder that replaces ``path`` when the block ends
    without an error; on any error it is removed and ``path`` is left as it was."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_output writes with mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                             dir=path.parent)
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as handle:
        handle.write(data)


def check_output_path(path: str | Path, suffix: str | None = None) -> Path:
    """``path`` as a Path if a file can be written there, else an :class:`OutputPathError`.

    Refuses a directory, a name without ``suffix`` (e.g. ``".npy"``, which numpy would
    otherwise append), a folder that does not exist or is not one, and a folder where no file
    can be created (tried with a temporary file, which also catches read-only mounts).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"output {path} is a directory: name a file inside it")
    if suffix is not None and path.suffix != suffix:
        raise OutputPathError(f"output {path} must end in {suffix}")
    folder = path.parent
    if not folder.exists():
        raise OutputPathError(f"cannot write {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputPathError(f"cannot write {path}: {error.strerror or error}") from error
    return path
