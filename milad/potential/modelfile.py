"""Model files: a checked header, then the ``torch.save`` payload, verified before loading.

A model file (a potential, an ensemble or a stand-in for a missing one) is::

    milad-model-file\\n
    {"format": ..., "format_version": ..., "bytes": ..., "sha256": ...}\\n
    <torch.save of the record>

The header names the kind of model and its format version, and the size and SHA-256 digest of
the payload. :func:`read_model_file` checks all of them before the payload is unpickled (with
``torch.load(weights_only=True)``), so a damaged, truncated, empty, foreign or too new file gives
one :class:`ModelFileError` naming the file and the problem. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_bytes

__all__ = ["MAGIC", "READABLE_FORMATS", "ModelFileError", "read_model_file",
           "read_model_header", "write_model_file"]

MAGIC = b"milad-model-file\n"
#: format -> the format version this code reads and writes (kinds register themselves)
READABLE_FORMATS: dict[str, int] = {}
_MAX_HEADER = 4096  # bytes: a longer first line is not a header


class ModelFileError(ValueError):
    """A model file that is damaged, truncated, empty, not a milad model file or of a format
    version this code does not read; the message names the file."""


def write_model_file(record: dict[str, Any], path: str | Path) -> None:
    """Save ``record`` (with its ``format`` and ``format_version``) to ``path`` atomically,
    behind a header holding the payload's size and SHA-256 digest."""
    buffer = io.BytesIO()
    torch.save(record, buffer)
    payload = buffer.getvalue()
    header = {"format": record["format"], "format_version": record["format_version"],
              "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, MAGIC + json.dumps(header).encode() + b"\n" + payload)


def _split(path: Path, content: bytes, payload: bool = True) -> tuple[dict[str, Any], bytes]:
    """The checked header of a model file's ``content`` and its payload bytes (checked
    against the header's size and digest unless ``payload`` is false)."""
    if not content:
        raise ModelFileError(f"{path} is empty: not a milad model file")
    if not content.startswith(MAGIC):
        if content.startswith(b"PK\x03\x04"):
            raise ModelFileError(
                f"{path} is a plain torch file without a milad header: written by an older "
                "milad (model file format 1) or by something else; re-create it by training")
        raise ModelFileError(f"{path} is not a milad model file (it does not start with "
                             f"{MAGIC.strip().decode()!r})")
    end = content.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    try:
        header = json.loads(content[len(MAGIC):end]) if end > 0 else None
    except ValueError:
        header = None
    keys = {"format", "format_version", "bytes", "sha256"}
    if not isinstance(header, dict) or not keys <= set(header) or not isinstance(
            header["format"], str):
        raise ModelFileError(f"{path} has a damaged header: the file is corrupt")
    version = READABLE_FORMATS.get(header["format"])
    if version is None:
        raise ModelFileError(f"{path} holds an unknown kind of model {header['format']!r}")
    if header["format_version"] != version:
        raise ModelFileError(
            f"{path} has {header['format']} format version {header['format_version']}; this "
            f"milad reads version {version} (re-create the file, or use the milad that wrote it)")
    data = content[end + 1:]
    if not payload:
        return header, data
    if len(data) != header["bytes"]:
        raise ModelFileError(f"{path} is truncated or padded: {len(data)} bytes of model "
                             f"data where its header says {header['bytes']}")
    if hashlib.sha256(data).hexdigest() != header["sha256"]:
        raise ModelFileError(f"{path} is corrupt: its contents do not match the SHA-256 "
                             "digest in its header")
    return header, data


def _read(path: str | Path, size: int | None = None) -> tuple[Path, bytes]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with open(path, "rb") as handle:
            return path, handle.read() if size is None else handle.read(size)
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {error.strerror or error}") from error


def read_model_header(path: str | Path) -> dict[str, Any]:
    """The header of a model file (format, version, size, digest), read without the payload
    (which is not checked)."""
    path, start = _read(path, len(MAGIC) + _MAX_HEADER)
    end = start.find(b"\n", len(MAGIC))
    return _split(path, start[:end + 1] if end > 0 else start, payload=False)[0]


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The record saved in a model file, after checking its header, size and digest
    (:class:`ModelFileError` if any check fails)."""
    path, content = _read(path)
    header, payload = _split(path, content)
    try:
        record = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # digest matched: written damaged, or by foreign code
        raise ModelFileError(f"{path} passed its digest check but its model data cannot be "
                             f"read ({type(error).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != header["format"]:
        raise ModelFileError(f"{path}: its model data do not match its header")
    return record
