"""Hyper-parameter selection of the per-element potentials by k-fold cross-validation (CV).

Every configuration (descriptor, model and training settings) of an element is fitted k times
on the element's TRAINING file, each time holding out one fold of its structures; the test
file takes no part in any fit or choice. Each fit leaves one fold record (a JSON object):
``element``, ``configuration``, ``fold``, ``n_folds``, ``available`` (``False`` with a
``reason`` where the element has no training data, and then no metrics), the metrics
(:data:`METRICS`) on the held-out fold (``held_out``) and on the fitted structures (``fit``),
``seconds`` (wall time of the fit), ``n_parameters`` and ``fits_time_limited`` (how many of
its fits the wall-time cap stopped; inferred for older records, see :func:`fold_table`).

* :func:`fold_table`: the records as one flat row each;
* :func:`selection_table`: one row per element and configuration with the pooled CV errors,
  the score relative to a baseline configuration and the chosen configuration;
* :func:`choose`: the chosen configuration per element;
* :func:`ablation_table`: CV errors with and without each lever (a pair of configurations);
* :func:`selection_markdown`, :func:`ablation_markdown`: both tables as Markdown.

Units: energies meV/atom, forces eV/A, times s.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..provenance import provenance_comment_lines

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ABLATION_COLUMNS",
    "METRICS",
    "SELECTION_COLUMNS",
    "ablation_markdown",
    "ablation_table",
    "choose",
    "fold_table",
    "selection_markdown",
    "selection_table",
]

#: metrics of a fold record's ``held_out`` and ``fit`` entries (prefixed ``cv_`` / ``fit_`` in
#: :func:`fold_table`)
METRICS = (
    "n_structures",
    "n_atoms",
    "energy_rmse_meV_per_atom",
    "energy_mae_meV_per_atom",
    "force_rmse_eV_per_A",
    "force_mae_eV_per_A",
    "atoms_extrapolating",
    "structures_extrapolating",
)

#: columns of :func:`selection_table`
SELECTION_COLUMNS = (
    "element", "configuration", "baseline", "available", "reason", "n_folds", "folds",
    "cv_n_structures", "cv_n_atoms", "cv_energy_rmse_meV_per_atom",
    "cv_energy_rmse_std_meV_per_atom", "cv_force_rmse_eV_per_A", "cv_force_rmse_std_eV_per_A",
    "fit_energy_rmse_meV_per_atom", "fit_force_rmse_eV_per_A", "cv_structures_extrapolating",
    "seconds", "fits_time_limited", "n_parameters", "score", "chosen",
)

#: columns of :func:`ablation_table`
ABLATION_COLUMNS = (
    "element", "lever", "without", "with", "energy_without_meV_per_atom",
    "energy_with_meV_per_atom", "energy_ratio", "force_without_eV_per_A", "force_with_eV_per_A",
    "force_ratio",
)

_COUNTS = ("n_folds", "folds", "cv_n_structures", "cv_n_atoms", "cv_structures_extrapolating",
           "fits_time_limited", "n_parameters")
_ENERGY = "energy_rmse_meV_per_atom"
_FORCE = "force_rmse_eV_per_A"
_QUESTION = "whether this is due to the regression scheme or the descriptors"


def _name(record: Mapping[str, Any]) -> str:
    """``element/configuration/fold N`` of a record, for error messages."""
    return (f"{record.get('element')}/{record.get('configuration')}/"
            f"fold {record.get('fold', '?')}")


def _time_limited(record: Mapping[str, Any]) -> int | None:
    """How many fits of an available record the wall-time cap stopped: its own count, or for
    a record written before the count existed 0 when its whole wall time stayed under one
    cap (no fit can have reached it), else None (unknown)."""
    if record.get("fits_time_limited") is not None:
        return int(record["fits_time_limited"])
    cap = ((record.get("settings") or {}).get("training") or {}).get("max_minutes")
    if cap is not None and record.get("seconds") is not None and (
            float(record["seconds"]) < 60 * float(cap)):
        return 0
    return None


def _flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """One fold record as a flat row; raises ``ValueError`` on a malformed record."""
    if not isinstance(record, Mapping):
        raise ValueError(f"a fold record must be a mapping, not {type(record).__name__}")
    missing = [key for key in ("element", "configuration", "available") if key not in record]
    if missing:
        raise ValueError(f"fold record {_name(record)} lacks {missing}")
    row: dict[str, Any] = {
        "element": record["element"], "configuration": record["configuration"],
        "fold": record.get("fold"), "n_folds": record.get("n_folds"),
        "available": bool(record["available"]), "reason": record.get("reason"),
        "seconds": record.get("seconds"), "n_parameters": record.get("n_parameters"),
    }
    if not row["available"]:
        if not row["reason"]:
            raise ValueError(f"unavailable fold record {_name(record)} gives no reason")
        return row
    needed = [key for key in ("fold", "n_folds", "held_out", "fit", "seconds", "n_parameters")
              if record.get(key) is None]
    if needed:
        raise ValueError(f"fold record {_name(record)} lacks {needed}")
    if int(record["n_folds"]) < 2:
        raise ValueError(f"fold record {_name(record)}: n_folds must be at least 2, "
                         f"not {record['n_folds']}")
    for prefix, part in (("cv_", "held_out"), ("fit_", "fit")):
        metrics = record[part]
        absent = [key for key in METRICS if key not in metrics]
        if absent:
            raise ValueError(f"fold record {_name(record)}: {part} lacks {absent}")
        row.update({prefix + key: metrics[key] for key in METRICS})
    row["fits_time_limited"] = _time_limited(record)
    return row


def fold_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per fold record: ``element``, ``configuration``, ``fold``, ``n_folds``,
    ``available``, ``reason``, ``seconds``, ``fits_time_limited``, ``n_parameters`` and every
    metric of :data:`METRICS` on the held-out fold (``cv_...``) and on the fitted structures
    (``fit_...``); NaN / ``<NA>`` for the metrics of unavailable records.
    ``fits_time_limited`` is the record's own count or, for a record that has none, 0 where its
    wall time stayed under one ``max_minutes`` cap and ``<NA>`` (unknown) otherwise.

    Raises ``ValueError`` for a record without its keys, an available one without metrics or
    with fewer than 2 folds, an unavailable one without a reason.
    """
    import pandas as pd

    columns = ["element", "configuration", "fold", "n_folds", "available", "reason",
               *(prefix + key for prefix in ("cv_", "fit_") for key in METRICS),
               "seconds", "fits_time_limited", "n_parameters"]
    frame = pd.DataFrame([_flat(record) for record in records], columns=columns)
    counts = ["fold", "n_folds", "fits_time_limited", "n_parameters"]
    frame[counts] = frame[counts].astype("Int64")
    frame["available"] = frame["available"].astype(bool)
    return frame


def _pooled(rmse: pd.Series, weights: pd.Series) -> float:
    """RMSE over all held-out values: sqrt of the ``weights``-weighted mean of squared fold
    RMSEs (same unit as ``rmse``)."""
    w = weights.to_numpy(dtype=float)
    return math.sqrt(float(np.sum(w * rmse.to_numpy(dtype=float) ** 2) / np.sum(w)))


def _summary(folds: pd.DataFrame, label: str) -> dict[str, Any]:
    """The CV row of one element and configuration from its fold rows (all available);
    raises ``ValueError`` if folds are missing, repeated or the records disagree."""
    counts = folds["n_folds"].unique()
    if len(counts) != 1:
        raise ValueError(f"{label}: fold records disagree on n_folds: {sorted(counts)}")
    n_folds = int(counts[0])
    found = folds["fold"].astype(int)
    repeated = sorted(set(found[found.duplicated()]))
    if repeated:
        raise ValueError(f"{label}: more than one record of fold(s) {repeated}")
    missing = sorted(set(range(n_folds)) - set(found))
    extra = sorted(set(found) - set(range(n_folds)))
    if missing or extra:
        raise ValueError(f"{label}: {n_folds}-fold CV, but fold(s) {missing} missing"
                         + (f" and fold(s) {extra} out of range" if extra else ""))
    parameters = folds["n_parameters"].unique()
    if len(parameters) != 1:
        raise ValueError(f"{label}: folds disagree on n_parameters: {sorted(parameters)}")
    return {
        "n_folds": n_folds, "folds": len(folds),
        "cv_n_structures": int(folds["cv_n_structures"].sum()),
        "cv_n_atoms": int(folds["cv_n_atoms"].sum()),
        "cv_energy_rmse_meV_per_atom": _pooled(folds[f"cv_{_ENERGY}"], folds["cv_n_structures"]),
        "cv_energy_rmse_std_meV_per_atom": float(folds[f"cv_{_ENERGY}"].std(ddof=1)),
        "cv_force_rmse_eV_per_A": _pooled(folds[f"cv_{_FORCE}"], 3 * folds["cv_n_atoms"]),
        "cv_force_rmse_std_eV_per_A": float(folds[f"cv_{_FORCE}"].std(ddof=1)),
        "fit_energy_rmse_meV_per_atom": float(folds[f"fit_{_ENERGY}"].mean()),
        "fit_force_rmse_eV_per_A": float(folds[f"fit_{_FORCE}"].mean()),
        "cv_structures_extrapolating": int(folds["cv_structures_extrapolating"].sum()),
        "seconds": float(folds["seconds"].sum()),
        "fits_time_limited": folds["fits_time_limited"].sum(skipna=False),
        "n_parameters": int(parameters[0]),
    }


def _scored(rows: list[dict[str, Any]], element: str, baseline: str) -> None:
    """Fill ``score`` and ``chosen`` of one available element's rows (in tie-break order); a
    configuration with a non-finite score (a NaN RMSE) cannot be chosen."""
    base = next((row for row in rows if row["configuration"] == baseline), None)
    if base is None:
        raise ValueError(f"{element}: no records of the baseline configuration {baseline!r}")
    energy, force = base["cv_energy_rmse_meV_per_atom"], base["cv_force_rmse_eV_per_A"]
    if not (energy > 0 and force > 0):
        raise ValueError(f"{element}: the baseline's CV RMSEs must be positive to score "
                         f"against (energy {energy}, force {force})")
    for row in rows:
        row["score"] = (row["cv_energy_rmse_meV_per_atom"] / energy
                        + row["cv_force_rmse_eV_per_A"] / force)
    eligible = [row for row in rows if math.isfinite(row["score"])]
    min(eligible, key=lambda row: row["score"])["chosen"] = True  # the first of equal scores


def selection_table(records: Iterable[Mapping[str, Any]], baseline: str,
                    order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per element and configuration (:data:`SELECTION_COLUMNS`), from fold records.

    Per configuration: ``folds`` found (every fold 0 .. ``n_folds`` - 1 exactly once, else
    ``ValueError`` naming the missing ones); the pooled CV energy RMSE over all held-out
    structures (meV/atom; fold RMSEs weighted by their structures) and force RMSE (eV/A;
    weighted by their 3 x n_atoms force components), the sample standard deviation (ddof 1) of
    the fold RMSEs (``..._std_...``), the mean fit RMSEs over folds, the held-out structures
    and those extrapolating, total ``seconds``, ``fits_time_limited`` (summed over folds,
    ``<NA>`` if any fold's is unknown) and ``n_parameters``.
    ``score`` = CV energy RMSE / baseline's + CV force RMSE / baseline's (2.0 for
    ``baseline``); ``chosen`` marks the lowest score per element, equal scores going to the
    configuration first in ``order`` (default: order of first appearance in ``records``;
    the rows follow it too), a NaN score never. An element whose records are all unavailable
    gets rows with NaN metrics, its ``reason`` and nothing chosen; one with both kinds raises
    ``ValueError``.
    """
    import pandas as pd

    folds = fold_table(records)
    if folds.empty:
        raise ValueError("no fold records")
    configurations = list(dict.fromkeys(folds["configuration"]))
    if order is None:
        order = configurations
    else:
        order = list(dict.fromkeys(order))
        unordered = [c for c in configurations if c not in order]
        if unordered:
            raise ValueError(f"order {order} lacks configuration(s) {unordered}")
    if baseline not in configurations:
        raise ValueError(f"baseline {baseline!r} is not among the configurations "
                         f"{configurations}")
    rows = []
    for element, records_of in folds.groupby("element", sort=False):
        availability = set(records_of["available"])
        if len(availability) > 1:
            raise ValueError(f"{element}: some fold records are available and some are not")
        present = [c for c in order if (records_of["configuration"] == c).any()]
        element_rows = [{"element": element, "configuration": c, "baseline": c == baseline,
                         "chosen": False} for c in present]
        if availability == {False}:
            reason = "; ".join(dict.fromkeys(records_of["reason"]))
            for row in element_rows:
                row.update(available=False, reason=reason)
        else:
            for row in element_rows:
                group = records_of[records_of["configuration"] == row["configuration"]]
                row.update(available=True, reason=None,
                           **_summary(group, f"{element}/{row['configuration']}"))
            _scored(element_rows, element, baseline)
        rows.extend(element_rows)
    table = pd.DataFrame(rows, columns=list(SELECTION_COLUMNS))
    table[list(_COUNTS)] = table[list(_COUNTS)].astype("Int64")
    table[["baseline", "available", "chosen"]] = table[["baseline", "available",
                                                        "chosen"]].astype(bool)
    return table


def _require(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` unless ``table`` has ``columns``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def choose(table: pd.DataFrame) -> dict[str, str | None]:
    """Element -> its chosen configuration in a :func:`selection_table` (``None`` where the
    element is unavailable and nothing was chosen)."""
    _require(table, ("element", "configuration", "chosen"), "selection table")
    chosen: dict[str, str | None] = {}
    for element, rows in table.groupby("element", sort=False):
        picked = list(rows.loc[rows["chosen"].astype(bool), "configuration"])
        if len(picked) > 1:
            raise ValueError(f"{element}: more than one configuration chosen: {picked}")
        chosen[element] = picked[0] if picked else None
    return chosen


def ablation_table(table: pd.DataFrame,
                   levers: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """CV errors without and with each lever, per available element (:data:`ABLATION_COLUMNS`).

    levers: name -> (configuration without, configuration with), e.g.
    ``{"n_max 7 -> 10": ("paper", "nmax10")}``. Energies in meV/atom, forces in eV/A; the
    ratios are with / without (below 1: the lever lowered the CV RMSE). Element-lever pairs
    missing either configuration are skipped; rows by element (table order), then lever.
    """
    import pandas as pd

    _require(table, ("element", "configuration", "available", "cv_energy_rmse_meV_per_atom",
                     "cv_force_rmse_eV_per_A"), "selection table")
    for name, pair in levers.items():
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"lever {name!r}: expected (configuration without, configuration "
                             f"with), got {pair!r}")
    available = table[table["available"].astype(bool)].set_index(["element", "configuration"])
    rows = []
    for element in dict.fromkeys(available.index.get_level_values("element")):
        for name, (without, with_) in levers.items():
            if (element, without) not in available.index or (element, with_) not in available.index:
                continue
            before, after = available.loc[(element, without)], available.loc[(element, with_)]
            e0, e1 = before["cv_energy_rmse_meV_per_atom"], after["cv_energy_rmse_meV_per_atom"]
            f0, f1 = before["cv_force_rmse_eV_per_A"], after["cv_force_rmse_eV_per_A"]
            rows.append({"element": element, "lever": name, "without": without, "with": with_,
                         "energy_without_meV_per_atom": e0, "energy_with_meV_per_atom": e1,
                         "energy_ratio": e1 / e0, "force_without_eV_per_A": f0,
                         "force_with_eV_per_A": f1, "force_ratio": f1 / f0})
    return pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))


# ----------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------
def _number(value: Any, digits: int) -> str:
    """``value`` with ``digits`` decimals; "-" for a missing value."""
    import pandas as pd

    if value is None or pd.isna(value):
        return "-"
    return f"{value:.{digits}f}"


def _with_spread(value: Any, spread: Any, digits: int) -> str:
    """"value ± spread" (either "-" where missing)."""
    if _number(value, digits) == "-":
        return "-"
    return f"{_number(value, digits)} ± {_number(spread, digits)}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Markdown table lines, the first column left-aligned and the others right-aligned."""
    return (["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def _closing(record: Mapping[str, Any] | None) -> list[str]:
    """The ``## Provenance`` section of ``record`` (read back by
    :func:`milad.provenance.read_provenance`), none without one."""
    if record is None:
        return []
    return ["", "## Provenance", ""] + [f"- {line}" for line in
                                         provenance_comment_lines(record, prefix="")]


def selection_markdown(table: pd.DataFrame, baseline: str | None = None,
                       title: str = "Hyper-parameter selection by cross-validation",
                       record: Mapping[str, Any] | None = None) -> str:
    """A :func:`selection_table` as Markdown: how the choice is made, then per element every
    configuration with its CV energy (meV/atom) and force RMSE (eV/A) ± the fold spread, the
    mean fit RMSEs, score, time and parameters, the chosen one in bold and marked; then the
    provenance ``record`` if given. The baseline is the table's; ``baseline``, if given, must
    be it (else ``ValueError``)."""
    _require(table, SELECTION_COLUMNS, "selection table")
    baselines = list(dict.fromkeys(table.loc[table["baseline"], "configuration"]))
    if baseline is not None and baselines != [baseline]:
        raise ValueError(f"baseline {baseline!r}, but the table was scored against {baselines}")
    lines = [
        f"# {title}", "",
        "Every configuration was fitted k times on the element's training file, each time "
        "holding out one fold of its structures (k-fold cross-validation, CV, on the training "
        "file only); the test file was never seen by any fit or by the choice. CV RMSEs pool "
        "all held-out structures (energies weighted by structures, forces by force "
        "components), ± the standard deviation over folds. Score = CV energy RMSE / the "
        "baseline's + CV force RMSE / the baseline's (baseline "
        f"{', '.join(baselines) or '-'}: 2); the lowest score per element is chosen, equal "
        "scores going to the configuration listed first. \"Capped\": fits stopped by the "
        "wall-time cap (max_minutes) rather than by early stopping or the epoch limit, whose "
        "result depends on the machine's load (\"-\": not recorded).",
    ]
    header = ["configuration", "CV energy RMSE (meV/atom)", "CV force RMSE (eV/A)",
              "fit energy RMSE (meV/atom)", "fit force RMSE (eV/A)", "score", "time (s)",
              "capped", "parameters", "chosen"]
    for element, rows in table.groupby("element", sort=False):
        lines += ["", f"## {element}", ""]
        first = rows.iloc[0]
        if not first["available"]:
            lines += [f"No training data, nothing chosen: {first['reason']}", ""]
        else:
            lines += [f"{first['n_folds']}-fold CV over {first['cv_n_structures']} training "
                      "structures.", ""]
        body = []
        for _, row in rows.iterrows():
            name = row["configuration"] + (" (baseline)" if row["baseline"] else "")
            body.append([
                f"**{name}**" if row["chosen"] else name,
                _with_spread(row["cv_energy_rmse_meV_per_atom"],
                             row["cv_energy_rmse_std_meV_per_atom"], 2),
                _with_spread(row["cv_force_rmse_eV_per_A"], row["cv_force_rmse_std_eV_per_A"], 3),
                _number(row["fit_energy_rmse_meV_per_atom"], 2),
                _number(row["fit_force_rmse_eV_per_A"], 3),
                _number(row["score"], 3), _number(row["seconds"], 0),
                _number(row["fits_time_limited"], 0), _number(row["n_parameters"], 0),
                "**chosen**" if row["chosen"] else "",
            ])
        lines += _table(header, body)
    return "\n".join(lines + _closing(record)) + "\n"


def _lowered(rows: pd.DataFrame, column: str) -> str:
    """"k of n elements (those elements)" where ``column`` (a ratio) is below 1."""
    lower = list(rows.loc[rows[column] < 1, "element"])
    return f"{len(lower)} of {len(rows)} element(s)" + (f" ({', '.join(lower)})" if lower else "")


def ablation_markdown(ablation: pd.DataFrame, title: str = "Ablation: one lever at a time",
                      record: Mapping[str, Any] | None = None) -> str:
    """An :func:`ablation_table` as Markdown: per lever and element the CV energy (meV/atom)
    and force RMSE (eV/A) without and with it and their ratios (with / without); then, per
    lever, for how many elements it lowered each CV RMSE (all the numbers say about the paper's
    open question whether its errors are due to the regression scheme or the descriptors); then
    the provenance ``record`` if given."""
    _require(ablation, ABLATION_COLUMNS, "ablation table")
    lines = [f"# {title}", "",
             "CV RMSEs on the training files (k-fold cross-validation; the test files are not "
             "used); ratio = with / without the lever, below 1: the lever lowered the error."]
    header = ["element", "CV energy RMSE without (meV/atom)", "with", "ratio",
              "CV force RMSE without (eV/A)", "with", "ratio"]
    findings = []
    for lever, rows in ablation.groupby("lever", sort=False):
        lines += ["", f"## {lever} ({rows['without'].iloc[0]} -> {rows['with'].iloc[0]})", ""]
        lines += _table(header, ([
            row["element"], _number(row["energy_without_meV_per_atom"], 2),
            _number(row["energy_with_meV_per_atom"], 2), _number(row["energy_ratio"], 3),
            _number(row["force_without_eV_per_A"], 3), _number(row["force_with_eV_per_A"], 3),
            _number(row["force_ratio"], 3)] for _, row in rows.iterrows()))
        findings.append(f"{lever} lowered the CV energy RMSE for "
                        f"{_lowered(rows, 'energy_ratio')} and the CV force RMSE for "
                        f"{_lowered(rows, 'force_ratio')}")
    lines += ["", "## What the numbers say", ""]
    if findings:
        lines.append(f"On the paper's open question, {_QUESTION}: " + "; ".join(findings) + ".")
    else:
        lines.append("No lever has both of its configurations for any available element; "
                     f"nothing to say on the paper's open question, {_QUESTION}.")
    return "\n".join(lines + _closing(record)) + "\n"
