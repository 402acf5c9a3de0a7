"""Provenance records for pipeline outputs: which code, which commit and which configuration.

Every table the pipeline writes carries the dictionary returned by :func:`provenance`, so a
number can always be traced back to the package version, the git commit (and whether the
working tree had uncommitted changes) and the configuration that produced it.

For a new rule's script, the short route is::

    from milad.provenance import job_provenance, write_csv, with_provenance

    record = job_provenance(snakemake)                # config, rule, wildcards, params, ...
    write_csv(frame, snakemake.output.csv, record)    # '# key: value' header, then the CSV
    json.dump(with_provenance(summary, record), ...)  # JSON tables get a "provenance" key

and :func:`read_provenance` reads the record back from any of these files (the tests use it
to check that every table of a pipeline run has one).
"""

from __future__ import annotations

import gzip
import json
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from .io import atomic_output, atomic_write_text

__all__ = [
    "REQUIRED_FIELDS",
    "git_commit",
    "job_provenance",
    "provenance",
    "provenance_comment_lines",
    "read_provenance",
    "with_provenance",
    "write_csv",
    "write_html_table",
]

#: Fields every provenance record has (and :func:`read_provenance` callers can rely on).
REQUIRED_FIELDS = ("milad_version", "git_commit", "git_dirty", "config")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip()


def git_commit(path: str | Path | None = None) -> dict[str, Any]:
    """Commit of the git checkout holding ``path`` (default: the milad package itself).

    Returns ``{"commit": sha or "unknown", "dirty": bool or None}``; ``dirty`` tells whether
    tracked files differ from that commit. Outside a checkout (an installed wheel) or in a
    repository without commits both are unknown.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    if where.is_file():
        where = where.parent
    commit = _git(["rev-parse", "--verify", "HEAD"], where)
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (Snakemake's Namedlists, paths, numpy scalars...)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "items"):
        return dict(value.items())
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def provenance(config: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Package version, git commit, interpreter and key library versions, and ``config``.

    ``extra`` keyword arguments are added as they are (e.g. ``rule="table1"``).
    """
    import numpy
    import scipy

    from . import __version__

    git = git_commit()
    record: dict[str, Any] = {
        "milad_version": __version__,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "config": _jsonable(dict(config)) if config is not None else {},
    }
    try:
        from importlib.metadata import version

        record["snakemake"] = version("snakemake")
    except Exception:  # pragma: no cover - snakemake is a dependency
        pass
    record.update(extra)
    return record


def job_provenance(snakemake: Any, **extra: Any) -> dict[str, Any]:
    """:func:`provenance` of a running Snakemake job, from the ``snakemake`` object of a script.

    Records the whole configuration, the rule name, its wildcards, parameters and input
    files, plus ``extra``.
    """
    wildcards = {k: v for k, v in dict(snakemake.wildcards.items()).items()
                 if not k.startswith("_")}
    params = {k: v for k, v in dict(snakemake.params.items()).items() if not k.startswith("_")}
    record = provenance(
        snakemake.config,
        rule=snakemake.rule,
        wildcards=_jsonable(wildcards),
        params=_jsonable(params),
        inputs=[str(path) for path in snakemake.input],
    )
    record.update(extra)
    return record


def provenance_comment_lines(record: Mapping[str, Any], prefix: str = "# ") -> list[str]:
    """``record`` as ``key: value`` lines (values JSON-encoded) behind a comment prefix."""
    return [
        f"{prefix}{key}: {json.dumps(value, sort_keys=True, default=_json_default)}"
        for key, value in record.items()
    ]


def write_csv(
    frame: Any,
    path: str | Path,
    record: Mapping[str, Any],
    comments: Iterable[str] = (),
    **to_csv: Any,
) -> Path:
    """Write a pandas DataFrame as CSV behind ``# comment`` lines and the provenance record.

    Read it back with :func:`read_csv` (not ``pandas.read_csv(comment="#")``, which would cut
    values such as the SMILES ``C#N`` at the ``#``) and the record with :func:`read_provenance`. ``to_csv`` keyword arguments go to ``DataFrame.to_csv``
    (default: no index, full float precision).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"index": False, "float_format": "%.17g"}
    options.update(to_csv)
    with atomic_output(path, "w") as handle:
        for line in comments:
            handle.write(f"# {line}\n")
        handle.write("\n".join(provenance_comment_lines(record)) + "\n")
        frame.to_csv(handle, **options)
    return path


def read_csv(path: str | Path, **read_csv: Any):
    """A CSV written by :func:`write_csv` as a pandas DataFrame: the leading ``#`` lines are
    skipped, and a ``#`` inside the table (e.g. a triple bond in a SMILES) is kept."""
    import pandas as pd

    skip = 0
    with open(path, errors="replace") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            skip += 1
    return pd.read_csv(path, skiprows=skip, **read_csv)


def write_html_table(
    frame: Any,
    path: str | Path,
    record: Mapping[str, Any],
    title: str,
    notes: Iterable[str] = (),
) -> Path:
    """A self-contained HTML page of a table, its notes and its provenance record.

    For the Snakemake report, which shows HTML inline (CSV files only as downloads).
    """
    import html

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = frame.to_html(index=False, na_rep="", border=0, classes="table")
    items = "".join(
        f"<li><code>{html.escape(key)}</code>: "
        f"<code>{html.escape(json.dumps(value, sort_keys=True, default=_json_default))}</code></li>"
        for key, value in record.items()
    )
    note_items = "".join(f"<li>{html.escape(line)}</li>" for line in notes)
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "th,td{padding:2px 8px;border-bottom:1px solid #ccc;text-align:right}"
        "td:first-child,td:nth-child(2){text-align:left}code{font-size:85%}"
        "</style></head><body>"
        f"<h2>{html.escape(title)}</h2>{table}"
        + (f"<h3>Notes</h3><ol>{note_items}</ol>" if note_items else "")
        + f"<h3>Provenance</h3><ul>{items}</ul></body></html>\n"
    )
    atomic_write_text(path, page)
    return path


def with_provenance(data: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the JSON object ``data`` with the record under the key ``"provenance"``."""
    out = dict(data)
    out["provenance"] = _jsonable(dict(record))
    return out


def _parse_lines(lines: Iterable[str], prefix: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for line in lines:
        if not line.startswith(prefix):
            continue
        key, sep, value = line[len(prefix):].partition(": ")
        if not sep or not key.replace("_", "").isalnum():
            continue
        try:
            record[key] = json.loads(value)
        except ValueError:
            continue
    return record


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance record stored in a pipeline output; ``{}`` when there is none.

    Understands CSV/TSV files with ``# key: value`` header lines (LaTeX: ``% key: value``),
    Markdown files with a ``## Provenance`` section of ``- key: value`` items, HTML pages of
    :func:`write_html_table`, and JSON objects (also gzipped) with a ``"provenance"`` key (top
    level or in ``"metadata"``).
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".json") or name.endswith(".json.gz"):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            return {}
        found = data.get("provenance")
        if found is None and isinstance(data.get("metadata"), dict):
            found = data["metadata"].get("provenance")
        return dict(found) if isinstance(found, dict) else {}
    text = path.read_text(errors="replace")
    if name.endswith(".md"):
        _, _, section = text.partition("## Provenance")
        return _parse_lines(section.splitlines(), "- ")
    if name.endswith((".html", ".htm")):
        import html

        _, _, section = text.partition("<h3>Provenance</h3>")
        items = re.findall(r"<li><code>(\w+)</code>: <code>(.*?)</code></li>", section, flags=re.S)
        return _parse_lines((f"{key}: {html.unescape(value)}" for key, value in items), "")
    comment = "%" if name.endswith(".tex") else "#"
    header = []
    for line in text.splitlines():
        if not line.startswith(comment):
            break
        header.append(line)
    return _parse_lines(header, comment + " ")
