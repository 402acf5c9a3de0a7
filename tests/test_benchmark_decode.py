"""benchmarks/decode.py on molecules of one's own (``--molecules``): records and table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ase.io import write

from milad.data import read_qm9_subset

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "decode.py"


def test_decode_benchmark_runs_on_a_file_of_other_molecules(tmp_path):
    """The two smallest subset molecules written to a file of their own, in reverse order:
    the records follow the file (its indices and formulas), not the shipped subset."""
    subset = read_qm9_subset()
    chosen = [subset[1], subset[0]]
    path = tmp_path / "own.xyz"
    write(path, chosen, format="extxyz")
    out = tmp_path / "records.json"
    run = subprocess.run([sys.executable, str(BENCHMARK), "--molecules", str(path), "--modes",
                          "positions", "--workers", "1", "--quiet", "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    records = sorted(json.loads(out.read_text())["records"], key=lambda r: r["index"])
    assert [r["formula"] for r in records] == [m.get_chemical_formula() for m in chosen]
    assert [r["qm9_id"] for r in records] == [m.info["qm9_id"] for m in chosen]
    assert all(r["success"] and r["fingerprint_rmsd"] < 1e-6 for r in records)
    assert "| positions | 2/2 (100%)" in run.stdout
