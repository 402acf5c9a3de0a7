"""Writing files safely: all or nothing, and output paths checked before any work.

:func:`atomic_output` writes through a temporary file in the target's directory and renames it
over the target only once everything is written (and, when asked, verified), so a crash, a
full disk or a file-size limit never leaves a truncated file under the real name; a write that
fails raises an :class:`OutputWriteError` naming the file. Every file the command line, the
library and the pipeline's scripts write goes through it (:func:`atomic_write_text`,
:func:`atomic_write_bytes`, or :func:`atomic_path` for writers that need a file name).
:func:`check_output_path` refuses an output path that cannot work (a directory, a missing or
read-only folder, a wrong suffix) before the work that would fill it starts.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

__all__ = ["OutputPathError", "OutputWriteError", "atomic_output", "atomic_path",
           "atomic_write_bytes", "atomic_write_text", "check_output_path"]


class OutputPathError(ValueError):
    """An output path that cannot be written (named in the message)."""


class OutputWriteError(OSError):
    """Writing an output failed (disk full, not a folder, no permission, ...): ``filename`` is
    the output, ``strerror`` why. Nothing was left under that name (what was there stays)."""

    def __str__(self) -> str:
        return f"could not write {self.filename}: {self.strerror}"


def _write_error(path: Path, error: OSError) -> OutputWriteError:
    if isinstance(error, OutputWriteError):
        return error
    return OutputWriteError(error.errno, error.strerror or str(error) or type(error).__name__,
                            str(path))


@contextmanager
def atomic_path(path: str | Path,
                verify: Callable[[Path], object] | None = None) -> Iterator[Path]:
    """The name of a new empty temporary file in ``path``'s folder (``.<name>.<random>.part``)
    for a writer that wants a file name rather than a handle (a downloader, say); tell such a
    writer the format, since the name does not end like ``path``.

    When the block ends without an error the file is synced to disk, passed to
    ``verify(temporary)`` (which raises to refuse it: a corrupt download never gets the final
    name) and renamed over ``path``. On any error the temporary file is removed and ``path`` is
    left as it was. Failing to create, sync or rename the temporary file raises an
    :class:`OutputWriteError` naming ``path``; errors of the block itself (which may do more
    than write, e.g. download) and of ``verify`` pass through unchanged.
    """
    path = Path(path)
    try:
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                            dir=path.parent)
        os.close(descriptor)
    except OSError as error:
        raise _write_error(path, error) from error
    temporary = Path(name)
    try:
        yield temporary
        _sync(temporary, path)
        if verify is not None:
            verify(temporary)
        try:
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
            os.replace(temporary, path)
        except OSError as error:
            raise _write_error(path, error) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _sync(temporary: Path, path: Path) -> None:
    try:
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise _write_error(path, error) from error


@contextmanager
def atomic_output(path: str | Path, mode: str = "wb",
                  verify: Callable[[Path], object] | None = None) -> Iterator[IO]:
    """An open temporary file in ``path``'s folder that replaces ``path`` when the block ends
    without an error (after ``verify(temporary)``, as in :func:`atomic_path`); on any error it
    is removed and ``path`` is left as it was. An ``OSError`` while writing (in the block
    too: it writes to the file) becomes an :class:`OutputWriteError` naming ``path``, so
    open the files the block reads before it. Writers that pick a format from the file name
    (``savefig``, ``ase.io.write``) must be given the format."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_output writes with mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    with atomic_path(path, verify) as temporary:
        try:
            with open(temporary, mode) as handle:
                yield handle
        except OSError as error:
            raise _write_error(path, error) from error


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, as ``Path.write_text`` would (see
    :func:`atomic_output`)."""
    with atomic_output(path, "w") as handle:
        handle.write(text)


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
