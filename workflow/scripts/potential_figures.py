"""Snakemake script (rule potential_figures): parity plots and learning curve of one element."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821
sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from milad.provenance import read_csv  # noqa: E402

summary = json.loads(Path(snakemake.input.metrics).read_text())  # noqa: F821
element = summary["element"]
if not summary["available"]:
    message = f"{element}: TRAINING DATA MISSING, no potential\n{summary['reason']}"
    for png, pdf in ((snakemake.output.parity_png, snakemake.output.parity_pdf),  # noqa: F821
                     (snakemake.output.curve_png, snakemake.output.curve_pdf)):  # noqa: F821
        figure, axis = plt.subplots(figsize=(8, 2.5))
        axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
        axis.axis("off")
        figure.savefig(png, dpi=100)
        figure.savefig(pdf)
        plt.close(figure)
    print(message)
    sys.exit(0)
metrics = summary["metrics"]
data = np.load(snakemake.input.predictions)  # noqa: F821
commit = summary["provenance"].get("git_commit", "unknown")[:10]
footer = f"milad {summary['provenance'].get('milad_version', '?')}, commit {commit}"

# ------------------------------------------------------------------ parity plots
styles = {"fit": ("fitted training", "tab:blue", 0.35), "validation": ("validation", "tab:green", 0.6),
          "test": ("test", "tab:red", 0.8)}
figure, (energy_axis, force_axis) = plt.subplots(1, 2, figsize=(10, 4.6))
for name, (label, colour, alpha) in styles.items():
    if f"{name}_energy_reference" not in data:
        continue
    m = metrics[name]
    energy_axis.scatter(data[f"{name}_energy_reference"], data[f"{name}_energy_predicted"], s=10,
                        color=colour, alpha=alpha,
                        label=f"{label}: RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom")
    force_axis.scatter(data[f"{name}_forces_reference"].ravel(),
                       data[f"{name}_forces_predicted"].ravel(), s=2, color=colour, alpha=alpha,
                       label=f"{label}: RMSE {m['force_rmse_eV_per_A']:.3f} eV/A")
for axis, quantity in ((energy_axis, "energy per atom (eV/atom)"),
                       (force_axis, "force component (eV/A)")):
    low, high = axis.get_xlim()
    low, high = min(low, axis.get_ylim()[0]), max(high, axis.get_ylim()[1])
    axis.plot([low, high], [low, high], color="black", lw=0.8)
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    axis.set_xlabel(f"DFT {quantity}")
    axis.set_ylabel(f"MILAD NNP {quantity}")
    axis.legend(fontsize=8, loc="upper left")
    axis.set_aspect("equal")
figure.suptitle(f"{element}: parity of energies and force components ({footer})", fontsize=10)
figure.tight_layout()
figure.savefig(snakemake.output.parity_png, dpi=150)  # noqa: F821
figure.savefig(snakemake.output.parity_pdf)  # noqa: F821
plt.close(figure)

# ------------------------------------------------------------------ learning curve
curve = read_csv(snakemake.input.history)  # noqa: F821
figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
axes[0].semilogy(curve["epoch"], curve["train_loss"], label="fitted training")
if curve["validation_loss"].notna().any():
    axes[0].semilogy(curve["epoch"], curve["validation_loss"], label="validation")
axes[0].set_ylabel("loss (eq. 38)")
axes[1].semilogy(curve["epoch"], 1000 * curve["train_energy_rmse"], label="fitted training")
axes[1].semilogy(curve["epoch"], 1000 * curve["validation_energy_rmse"], label="validation")
axes[1].set_ylabel("energy RMSE (meV/atom)")
axes[2].semilogy(curve["epoch"], curve["train_force_rmse"], label="fitted training")
axes[2].semilogy(curve["epoch"], curve["validation_force_rmse"], label="validation")
axes[2].set_ylabel("force RMSE (eV/A)")
best = summary["training"].get("best_epoch")
for axis in axes:
    axis.set_xlabel("epoch")
    if best:
        axis.axvline(best, color="grey", ls="--", lw=0.8)
    axis.legend(fontsize=8)
figure.suptitle(f"{element}: learning curve, {summary['training'].get('optimizer')}; dashed: "
                f"kept (best validation) epoch {best} ({footer})", fontsize=10)
figure.tight_layout()
figure.savefig(snakemake.output.curve_png, dpi=150)  # noqa: F821
figure.savefig(snakemake.output.curve_pdf)  # noqa: F821
plt.close(figure)
print("written", list(snakemake.output))  # noqa: F821
