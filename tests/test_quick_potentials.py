"""The potentials path of the quick run, checked on what it wrote (issue 16).

Built on the one cached run of the quick configuration (:func:`workflow_support.quick_run`,
shared with test_workflow): Si trained from the mlearn files shipped with milad (sha256-pinned),
Ni without training data. Nothing here runs the pipeline again; each check reads the run's
files and recomputes what it can with NumPy or the saved model.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from milad.data import MLEARN_SHA256, mlearn_embedded_path, read_mlearn, sha256_of
from milad.potential import FingerprintSet, load_model
from milad.provenance import read_csv
from workflow_support import QUICK_CONFIG, QUICK_RESULTS, USES_QUICK_RUN, quick_run

# every test here reads the quick run
pytestmark = USES_QUICK_RUN

CONFIG = yaml.safe_load(QUICK_CONFIG.read_text())
POTENTIALS = CONFIG["potentials"]
TRAINED, MISSING = "Si", "Ni"  # shipped training file / training file not shipped
#: the quick run's two potentials of the trained element: (folder under potentials/<El>/,
#: its method name in Table III)
MODELS = (("", "MILAD, paper settings"), ("tuned", "MILAD, tuned"))
#: relative tolerance of a NumPy recomputation of an RMSE from the saved predictions
RECOMPUTED_RTOL = 1e-12


def potentials_dir(element: str) -> Path:
    return quick_run() / QUICK_RESULTS / "potentials" / element


def mlearn_dir(element: str, split: str) -> Path:
    """The fetched file's folder (resources/ of the run's working directory, not results/)."""
    return quick_run() / "resources" / "mlearn" / element / split


@lru_cache(maxsize=None)
def shipped_frames(split: str):
    """The structures of the quick run's copy of the trained element's mlearn file."""
    manifest = json.loads((mlearn_dir(TRAINED, split) / "manifest.json").read_text())
    return read_mlearn(mlearn_dir(TRAINED, split) / manifest["file"])


def test_quick_run_mlearn_data_are_the_shipped_pinned_files():
    """Si's training and test files come from the copies shipped with milad: the manifest says
    so, with the pinned digest, which is also that of the decompressed shipped file and of the
    file the run used; the fingerprints record the same. Ni's training file is not shipped and
    downloads are off: it is reported missing, not fetched."""
    assert POTENTIALS["data"]["download"] is False and POTENTIALS["data"]["mirror"] is None
    for split in ("training", "test"):
        pin = MLEARN_SHA256[(TRAINED, split)]
        assert pin is not None
        manifest = json.loads((mlearn_dir(TRAINED, split) / "manifest.json").read_text())
        assert manifest["available"] is True
        assert manifest["source"] == "embedded"  # the copy shipped with milad
        assert manifest["sha256"] == pin and manifest["sha256_verified"] is True
        assert manifest["download_allowed"] is False and not manifest["warnings"]
        with lzma.open(mlearn_embedded_path(TRAINED, split)) as shipped:
            assert hashlib.sha256(shipped.read()).hexdigest() == pin
        assert sha256_of(mlearn_dir(TRAINED, split) / manifest["file"]) == pin
        assert manifest["n_structures"] == len(shipped_frames(split))
        fingerprints = FingerprintSet.load(potentials_dir(TRAINED) / f"fingerprints_{split}.npz")
        assert fingerprints.metadata["sha256"] == pin
        assert fingerprints.metadata["source"] == "embedded"
    log = (quick_run() / QUICK_RESULTS / "logs" / "potentials" / "mlearn_data"
           / f"{TRAINED}_training.log").read_text()
    assert f"from embedded (sha256 {MLEARN_SHA256[(TRAINED, 'training')]}, verified: True)" in log
    missing = json.loads((mlearn_dir(MISSING, "training") / "manifest.json").read_text())
    assert missing["available"] is False and "not shipped with milad" in missing["reason"]
    assert not (mlearn_dir(MISSING, "training") / "training.json").exists()
    inventory = json.loads((potentials_dir(TRAINED).parent / "inventory.json").read_text())
    assert inventory["trained"] == [TRAINED]


@pytest.mark.parametrize("folder", [folder for folder, _ in MODELS],
                         ids=[method for _, method in MODELS])
def test_quick_run_metrics_equal_a_numpy_recomputation_from_the_saved_predictions(folder):
    """metrics.json's RMSEs and MAEs (energies in meV/atom over structures of
    (E_pred - E_ref) / N, forces in eV/A over all components) recomputed with NumPy from
    predictions.npz, whose reference values are the shipped file's first ``max_structures``
    structures (training) and test structures (test).

    Tolerance: ``RECOMPUTED_RTOL`` relative, plus for energies the rounding of the per-atom
    energies the file stores (milad subtracts totals and then divides by N; the file holds
    E/N, so the difference carries a few ulp of |E/N|, about 1e-15 eV/atom here).
    """
    directory = potentials_dir(TRAINED) / folder
    summary = json.loads((directory / "metrics.json").read_text())
    saved = np.load(directory / "predictions.npz")
    assert summary["available"] is True
    assert set(summary["metrics"]) == {"fit", "validation", "training", "test"}
    limit = POTENTIALS["data"]["max_structures"]
    expected = {"training": shipped_frames("training")[:limit],
                "test": shipped_frames("test")[:limit]}
    for split, frames in expected.items():
        n_atoms = np.array([len(a) for a in frames])
        np.testing.assert_array_equal(saved[f"{split}_n_atoms"], n_atoms)
        np.testing.assert_array_equal(
            saved[f"{split}_energy_reference"],
            [a.get_potential_energy() / len(a) for a in frames])
        np.testing.assert_array_equal(saved[f"{split}_forces_reference"],
                                      np.concatenate([a.get_forces() for a in frames]))
    for name, metrics in summary["metrics"].items():
        reference = saved[f"{name}_energy_reference"]
        energy_error = saved[f"{name}_energy_predicted"] - reference
        force_error = saved[f"{name}_forces_predicted"] - saved[f"{name}_forces_reference"]
        assert metrics["n_structures"] == len(reference) > 0
        assert metrics["n_atoms"] == int(saved[f"{name}_n_atoms"].sum()) == len(force_error)
        rounding = 1000 * 8 * np.finfo(float).eps * np.abs(reference).max()  # meV/atom
        recomputed = {
            "energy_rmse_meV_per_atom": (1000 * np.sqrt(np.mean(energy_error**2)), rounding),
            "energy_mae_meV_per_atom": (1000 * np.mean(np.abs(energy_error)), rounding),
            "force_rmse_eV_per_A": (np.sqrt(np.mean(force_error**2)), 0.0),
            "force_mae_eV_per_A": (np.mean(np.abs(force_error)), 0.0),
        }
        for key, (value, rounding_tolerance) in recomputed.items():
            assert math.isfinite(metrics[key]) and metrics[key] > 0, (name, key)
            assert metrics[key] == pytest.approx(
                value, rel=RECOMPUTED_RTOL, abs=rounding_tolerance), (name, key)
    fit, validation = summary["metrics"]["fit"], summary["metrics"]["validation"]
    assert fit["n_structures"] + validation["n_structures"] == limit


def test_quick_run_table3_rows_are_the_measured_numbers():
    """Table III's test rows of this pipeline: for Si finite numbers equal to metrics.json's
    test RMSEs (CSV: at the 6 significant digits it is written with or better; Markdown: the
    2 (energy) and 3 (force) decimals it shows); for Ni empty in the CSV, 'missing' in the
    Markdown, and a note that its training data are missing."""
    tables = quick_run() / QUICK_RESULTS / "tables"
    table = read_csv(tables / "table3.csv").set_index(["method", "split"])
    markdown = (tables / "table3.md").read_text().splitlines()
    header = next(line for line in markdown if line.startswith("| method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "energy_Cu" not in table.columns  # Cu is not an element of the quick run
    for folder, method in MODELS:
        test = json.loads((potentials_dir(TRAINED) / folder / "metrics.json").read_text())[
            "metrics"]["test"]
        row = table.loc[(method, "test")]
        energy, force = float(row[f"energy_{TRAINED}"]), float(row[f"force_{TRAINED}"])
        assert math.isfinite(energy) and math.isfinite(force)
        # the CSV holds 6 significant digits: half a unit of the 6th is at most 5e-6 relative
        assert energy == pytest.approx(test["energy_rmse_meV_per_atom"], rel=5e-6)
        assert force == pytest.approx(test["force_rmse_eV_per_A"], rel=5e-6)
        assert len(str(row[f"energy_{TRAINED}"]).replace(".", "").lstrip("0")) <= 6
        assert pd.isna(row[f"energy_{MISSING}"]) and pd.isna(row[f"force_{MISSING}"])
        line = next(l for l in markdown if l.startswith(f"| {method} | test |"))
        cells = dict(zip(columns, (c.strip() for c in line.strip("|").split("|"))))
        assert cells[f"E {TRAINED}"] == f"**{test['energy_rmse_meV_per_atom']:.2f}**"
        assert cells[f"F {TRAINED}"] == f"**{test['force_rmse_eV_per_A']:.3f}**"
        assert cells[f"E {MISSING}"] == cells[f"F {MISSING}"] == "missing"
    assert f"# note 1: {MISSING}: TRAINING DATA MISSING" in (tables / "table3.csv").read_text()


def _training_settings(element: str, *overrides: dict) -> dict:
    """The training settings of a fit of ``element``: the training block (without the job
    settings ``bias`` and ``threads``) with the element's own, then ``overrides`` in order,
    and the element's alpha (``train_model``'s settings)."""
    block = {k: v for k, v in POTENTIALS["training"].items() if k not in ("bias", "threads")}
    own = POTENTIALS["settings"][element]
    merged = {**block, **own.get("training", {})}
    for override in overrides:
        merged.update(override)
    return {**merged, "alpha": own["alpha"]}


def test_quick_run_refit_takes_the_refit_budget_and_cv_fits_the_reduced_one():
    """The chosen configuration is refitted with the training block and the selection mode's
    ``refit`` overrides (the budget of the paper-settings potential), not with the CV fits'
    reduced budget; every CV fit has the mode's ``training`` overrides. In the quick
    configuration the two differ in ``max_minutes``, so the check can fail."""
    selection = POTENTIALS["selection"]
    mode = selection[selection["mode"]]
    model = load_model(potentials_dir(TRAINED) / "tuned" / "model.pt")
    chosen = model.metadata["configuration"]
    own = selection["configurations"][chosen].get("training", {})
    refit = _training_settings(TRAINED, mode["refit"], own)
    assert model.metadata["settings"] == refit
    records = sorted((potentials_dir(TRAINED) / "selection").glob("*/fold*.json"))
    assert len(records) == len(mode["configurations"]) * mode["folds"]
    for path in records:
        record = json.loads(path.read_text())
        configuration = selection["configurations"][record["configuration"]]
        assert record["settings"]["training"] == _training_settings(
            TRAINED, mode["training"], configuration.get("training", {})), path
    assert _training_settings(TRAINED, mode["training"], own) != refit


#: Bounds on the quick run's NVE run (10 velocity-Verlet steps of 1 fs, Si64 at 300 K, the
#: tuned model). Measured: largest |E_tot(t) - E_tot(0)| 0.0073 meV/atom, drift -0.78
#: meV/atom/ps, while the potential energy swings by 5.3 meV/atom (0.34 eV exchanged with the
#: kinetic energy). A force off by 10 % in scale leaves about 10 % of that exchange unbalanced
#: (~0.5 meV/atom), a force of the wrong sign all of it twice (~10 meV/atom): both far above
#: the bounds, which leave a margin of about 14 over the measured values.
NVE_MAX_DEVIATION_eV = 1e-4
NVE_MAX_DRIFT_eV_PER_PS = 1e-2  # 0.1 meV/atom over the run's 10 fs
NVE_MIN_SWING_eV = 1e-3  # potential-energy range per atom: the run exchanges energy


def test_quick_run_nve_with_the_trained_model_conserves_energy():
    """The md_nve job ran the trained model the configuration names (its energy at the start
    structure is the trace's first potential energy; each network's training loss fell) and
    conserved the total energy within ``NVE_MAX_DEVIATION_eV`` per atom (largest deviation)
    and ``NVE_MAX_DRIFT_eV_PER_PS`` per atom (drift), while exchanging at least
    ``NVE_MIN_SWING_eV`` per atom between potential and kinetic energy (see the bounds for
    their reasons). The reported measures are recomputed from the saved trace."""
    md = POTENTIALS["md"]
    assert md["element"] == TRAINED
    run = json.loads((quick_run() / QUICK_RESULTS / "tables" / "md_nve.json").read_text())
    assert run["available"] is True and run["steps"] == md["steps"] >= 10
    model = load_model(potentials_dir(TRAINED) / ("tuned" if md["model"] == "tuned" else "")
                       / "model.pt")
    for member in getattr(model, "members", [model]):
        losses = member.history["train_loss"]
        assert len(losses) >= 1 and member.metadata["training"]["epochs"] >= 1
        assert losses[-1] < losses[0]
    start = next(a for a in shipped_frames("training")
                 if a.info.get("description") == run["start_structure"]["description"])
    assert start.get_chemical_formula() == run["start_structure"]["formula"]
    energy = model.evaluate(start, forces=False, warn=False)[0]
    assert energy == pytest.approx(run["potential"][0], rel=1e-12)

    n = run["n_atoms"]
    assert n == len(start) and len(run["total"]) == run["steps"] + 1
    total = np.asarray(run["total"]) / n
    np.testing.assert_allclose(total * n, np.add(run["potential"], run["kinetic"]), rtol=1e-15)
    deviation = np.abs(total - total[0]).max()
    drift = np.polyfit(run["time_ps"], total, 1)[0]
    assert run["max_deviation_eV_per_atom"] == pytest.approx(deviation, rel=1e-12)
    assert run["drift_eV_per_atom_per_ps"] == pytest.approx(drift, rel=1e-9)
    swing = np.ptp(np.asarray(run["potential"]) / n)
    assert swing > NVE_MIN_SWING_eV, swing
    assert deviation < NVE_MAX_DEVIATION_eV, deviation
    assert abs(drift) < NVE_MAX_DRIFT_eV_PER_PS, drift
