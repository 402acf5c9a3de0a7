"""Hyper-parameter selection by k-fold cross-validation (milad.potential.selection), on
synthetic fold records: pooled CV RMSEs, scores and choice, the ablation and the Markdown."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from milad.potential.selection import (
    SELECTION_COLUMNS,
    ablation_markdown,
    ablation_table,
    choose,
    fold_table,
    selection_markdown,
    selection_table,
)
from milad.provenance import read_provenance

CONFIGURATIONS = ("paper", "nmax10", "gaussian", "radii", "ensemble")
#: per element and configuration: factors on the baseline's fold energy and force RMSEs
FACTORS = {
    "Si": {"paper": (1.0, 1.0), "nmax10": (0.8, 0.9), "gaussian": (1.1, 0.95),
           "radii": (0.9, 1.2), "ensemble": (0.95, 0.85)},
    # gaussian and radii tie (score 1.8 each)
    "Ge": {"paper": (1.0, 1.0), "nmax10": (1.2, 1.1), "gaussian": (0.9, 0.9),
           "radii": (0.9, 0.9), "ensemble": (1.0, 1.3)},
}
#: the baseline's folds: held-out structures, atoms, energy (meV/atom) and force RMSE (eV/A)
STRUCTURES, ATOMS = (10, 20, 30), (300, 200, 100)
ENERGY, FORCE = (1.0, 2.0, 3.0), (0.1, 0.2, 0.3)
REASON = "Ni/training.json: not on the mirror and download disabled"
LEVERS = {"n_max 7 -> 10": ("paper", "nmax10"), "delta -> Gaussian": ("paper", "gaussian"),
          "one -> two radii": ["paper", "radii"],  # a list, as from the YAML configuration
          "single network -> ensemble": ("paper", "ensemble"),
          "range -> standard scaling": ("paper", "standard")}  # the last one never ran


def metrics(n_structures, n_atoms, energy, force):
    return {"n_structures": n_structures, "n_atoms": n_atoms,
            "energy_rmse_meV_per_atom": energy, "energy_mae_meV_per_atom": 0.8 * energy,
            "force_rmse_eV_per_A": force, "force_mae_eV_per_A": 0.7 * force,
            "atoms_extrapolating": 2, "structures_extrapolating": 1}


def records() -> list[dict]:
    """Si and Ge: every configuration x 3 folds; Ni: unavailable (no training data)."""
    out = []
    for element, factors in FACTORS.items():
        for configuration, (e, f) in factors.items():
            for fold in range(3):
                out.append({
                    "element": element, "configuration": configuration, "fold": fold,
                    "n_folds": 3, "available": True, "reason": None,
                    "held_out": metrics(STRUCTURES[fold], ATOMS[fold], e * ENERGY[fold],
                                        f * FORCE[fold]),
                    "fit": metrics(2 * sum(STRUCTURES) // 3, 400, e * ENERGY[fold] / 2,
                                   f * FORCE[fold] / 2),
                    "seconds": 10.0 + fold, "n_parameters": 8000,
                    "settings": {"descriptor": {}, "model": {}, "training": {}},
                    "provenance": {"milad_version": "0"},
                })
    out += [{"element": "Ni", "configuration": c, "fold": fold, "n_folds": 3,
             "available": False, "reason": REASON} for c in CONFIGURATIONS for fold in range(3)]
    return out


def rows(table, element):
    return table[table["element"] == element].set_index("configuration")


def test_fold_table_flattens_records():
    folds = fold_table(records())
    assert len(folds) == 45
    first = folds.iloc[0]
    assert (first["element"], first["configuration"], first["fold"]) == ("Si", "paper", 0)
    assert first["cv_energy_rmse_meV_per_atom"] == 1.0
    assert first["fit_energy_rmse_meV_per_atom"] == 0.5
    assert first["cv_n_atoms"] == 300 and first["fit_n_atoms"] == 400
    assert first["seconds"] == 10.0 and first["n_parameters"] == 8000
    ni = folds[folds["element"] == "Ni"]
    assert not ni["available"].any() and set(ni["reason"]) == {REASON}
    assert ni["cv_force_rmse_eV_per_A"].isna().all()


def test_pooled_rmse_and_spread_by_hand():
    table = selection_table(records(), baseline="paper")
    assert list(table.columns) == list(SELECTION_COLUMNS)
    paper = rows(table, "Si").loc["paper"]
    # energies weighted by structures (10, 20, 30), forces by 3 x atoms (900, 600, 300)
    assert paper["cv_energy_rmse_meV_per_atom"] == pytest.approx(
        math.sqrt((10 * 1 + 20 * 4 + 30 * 9) / 60))
    assert paper["cv_force_rmse_eV_per_A"] == pytest.approx(
        math.sqrt((900 * 0.01 + 600 * 0.04 + 300 * 0.09) / 1800))
    assert paper["cv_energy_rmse_std_meV_per_atom"] == pytest.approx(np.std([1, 2, 3], ddof=1))
    assert paper["cv_force_rmse_std_eV_per_A"] == pytest.approx(np.std([0.1, 0.2, 0.3], ddof=1))
    assert paper["fit_energy_rmse_meV_per_atom"] == pytest.approx(1.0)  # mean of 0.5, 1, 1.5
    assert (paper["folds"], paper["n_folds"], paper["cv_n_structures"], paper["cv_n_atoms"]) == (
        3, 3, 60, 600)
    assert paper["seconds"] == 33.0 and paper["n_parameters"] == 8000
    assert paper["cv_structures_extrapolating"] == 3


def test_scores_choice_and_tie_break():
    table = selection_table(records(), baseline="paper")
    for element, factors in FACTORS.items():
        scores = rows(table, element)["score"]
        for configuration, (e, f) in factors.items():
            assert scores[configuration] == pytest.approx(e + f)
        assert scores["paper"] == 2.0
    assert rows(table, "Si")["chosen"].to_dict() == {c: c == "nmax10" for c in CONFIGURATIONS}
    assert rows(table, "Si")["baseline"].to_dict() == {c: c == "paper" for c in CONFIGURATIONS}
    # Ge: gaussian and radii tie; the first in record order, or in `order`, wins
    assert choose(table) == {"Si": "nmax10", "Ge": "gaussian", "Ni": None}
    order = ["paper", "nmax10", "radii", "gaussian", "ensemble"]
    reordered = selection_table(records(), baseline="paper", order=order)
    assert choose(reordered) == {"Si": "nmax10", "Ge": "radii", "Ni": None}
    assert list(reordered["configuration"][:5]) == order
    # a configuration whose fits gave NaN errors is never chosen
    diverged = records()
    for r in diverged:
        if (r["element"], r["configuration"]) == ("Si", "radii"):
            r["held_out"]["energy_rmse_meV_per_atom"] = math.nan
            r["held_out"]["force_rmse_eV_per_A"] = 0.0
    nan_first = ["radii", "paper", "nmax10", "gaussian", "ensemble"]
    assert choose(selection_table(diverged, baseline="paper", order=nan_first))["Si"] == "nmax10"


def test_unavailable_element_rows():
    table = selection_table(records(), baseline="paper")
    ni = rows(table, "Ni")
    assert list(ni.index) == list(CONFIGURATIONS)
    assert not ni["available"].any() and not ni["chosen"].any()
    assert set(ni["reason"]) == {REASON}
    assert ni[["cv_energy_rmse_meV_per_atom", "cv_force_rmse_eV_per_A", "score"]].isna().all().all()
    assert rows(table, "Si")["reason"].isna().all()


def test_missing_and_repeated_folds_raise():
    data = [r for r in records()
            if not (r["element"], r["configuration"], r["fold"]) == ("Si", "gaussian", 1)]
    with pytest.raises(ValueError, match=r"Si/gaussian: 3-fold CV, but fold\(s\) \[1\] missing"):
        selection_table(data, baseline="paper")
    data = records()
    data.append(copy.deepcopy(data[0]))
    with pytest.raises(ValueError, match=r"Si/paper: more than one record of fold\(s\) \[0\]"):
        selection_table(data, baseline="paper")


def test_bad_input_raises():
    with pytest.raises(ValueError, match="baseline 'nope'"):
        selection_table(records(), baseline="nope")
    with pytest.raises(ValueError, match=r"lacks configuration\(s\) \['ensemble'\]"):
        selection_table(records(), baseline="paper", order=CONFIGURATIONS[:4])
    with pytest.raises(ValueError, match="no fold records"):
        selection_table([], baseline="paper")
    broken = records()
    del broken[0]["held_out"]["n_atoms"]
    with pytest.raises(ValueError, match=r"Si/paper/fold 0: held_out lacks \['n_atoms'\]"):
        fold_table(broken)
    mixed = records()
    mixed[-1]["element"] = "Si"
    with pytest.raises(ValueError, match="Si: some fold records are available and some"):
        selection_table(mixed, baseline="paper")
    no_reason = records()
    no_reason[-1]["reason"] = None
    with pytest.raises(ValueError, match="gives no reason"):
        fold_table(no_reason)
    without_baseline = [r for r in records()
                        if not (r["element"] == "Ge" and r["configuration"] == "paper")]
    with pytest.raises(ValueError, match="Ge: no records of the baseline configuration 'paper'"):
        selection_table(without_baseline, baseline="paper")


def test_ablation_ratios():
    table = selection_table(records(), baseline="paper")
    ablation = ablation_table(table, LEVERS)
    # 2 available elements x 4 levers that ran; Ni and the never-run lever are skipped
    assert len(ablation) == 8 and set(ablation["element"]) == {"Si", "Ge"}
    assert "range -> standard scaling" not in set(ablation["lever"])
    for _, row in ablation.iterrows():
        e, f = FACTORS[row["element"]][row["with"]]
        assert row["energy_ratio"] == pytest.approx(e) and row["force_ratio"] == pytest.approx(f)
        paper = rows(table, row["element"]).loc["paper"]
        assert row["energy_without_meV_per_atom"] == paper["cv_energy_rmse_meV_per_atom"]
        assert row["force_with_eV_per_A"] == pytest.approx(f * paper["cv_force_rmse_eV_per_A"])
    with pytest.raises(ValueError, match="lever 'bad'"):
        ablation_table(table, {"bad": ("paper",)})


def test_selection_markdown(tmp_path):
    table = selection_table(records(), baseline="paper")
    text = selection_markdown(table, record={"milad_version": "1.2.3", "git_commit": "abc"})
    assert "training file only" in text and "test file was never seen" in text
    assert "baseline paper: 2" in text
    sections = text.split("\n## ")
    assert [s.splitlines()[0] for s in sections[1:]] == ["Si", "Ge", "Ni", "Provenance"]
    for section in sections[1:4]:
        for configuration in CONFIGURATIONS:
            assert f"| {configuration}" in section or f"| **{configuration}" in section
    (chosen,) = [line for line in sections[1].splitlines() if "**chosen**" in line]
    assert chosen.startswith("| **nmax10** | 1.96 ± 0.80 |")  # 0.8 x sqrt(6) meV/atom
    assert "| paper (baseline) | 2.45 ± 1.00 | 0.183 ± 0.100 |" in sections[1]
    assert "No training data, nothing chosen: " + REASON in sections[3]
    assert "**chosen**" not in sections[3]
    path = tmp_path / "selection.md"
    path.write_text(text)
    assert read_provenance(path) == {"milad_version": "1.2.3", "git_commit": "abc"}
    assert selection_markdown(table, baseline="paper") == selection_markdown(table)
    with pytest.raises(ValueError, match="scored against"):
        selection_markdown(table, baseline="nmax10")


def test_ablation_markdown():
    ablation = ablation_table(selection_table(records(), baseline="paper"), LEVERS)
    text = ablation_markdown(ablation)
    for lever in list(LEVERS)[:4]:
        assert f"## {lever} (paper -> " in text
    assert "| Si | 2.45 | 1.96 | 0.800 |" in text
    closing = text.split("## What the numbers say")[1]
    assert "whether this is due to the regression scheme or the descriptors" in closing
    assert ("n_max 7 -> 10 lowered the CV energy RMSE for 1 of 2 element(s) (Si) and the CV "
            "force RMSE for 1 of 2 element(s) (Si)") in closing
    assert ("delta -> Gaussian lowered the CV energy RMSE for 1 of 2 element(s) (Ge) and the "
            "CV force RMSE for 2 of 2 element(s) (Si, Ge)") in closing
    assert "single network -> ensemble lowered the CV energy RMSE for 1 of 2 element(s) (Si)" \
        in closing
    empty = ablation_markdown(ablation.iloc[:0])
    assert "No lever has both of its configurations" in empty


def test_fits_stopped_by_the_time_cap_are_counted_or_inferred():
    """A record's own count is summed over folds; an older record without one counts 0 when
    its wall time stayed under one cap (no fit can have reached it) and is unknown otherwise."""
    given = [r for r in records() if r["element"] == "Si"]
    for record in given:
        if record["configuration"] == "nmax10":
            record["fits_time_limited"] = record["fold"] % 2  # folds 0, 1, 2: 0, 1, 0
        else:
            record["settings"]["training"]["max_minutes"] = 1  # 60 s, > 10-12 s
    radii = [r for r in given if r["configuration"] == "radii"]
    radii[2]["seconds"] = 61.0  # over one cap, nothing recorded: unknown
    table = rows(selection_table(given, baseline="paper"), "Si")
    assert table.loc["nmax10", "fits_time_limited"] == 1
    assert table.loc["paper", "fits_time_limited"] == 0
    assert table["fits_time_limited"].isna().tolist() == [c == "radii" for c in CONFIGURATIONS]
    text = selection_markdown(table.reset_index())
    assert "| time (s) | capped | parameters |" in text
    line = next(x for x in text.splitlines() if x.startswith("| **nmax10"))
    assert line.split(" | ")[7] == "1"
