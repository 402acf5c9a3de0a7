"""Snakemake script (rules fig2, fig3, fig5, fig6, fig7, si_fig1, si_fig2): one figure of the
QM9 experiment, drawn by its milad.plots function and saved as PDF and PNG."""

from milad_job import start_job

start_job(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from milad import plots  # noqa: E402
from milad.provenance import read_csv  # noqa: E402

rule = snakemake.rule  # noqa: F821
params = snakemake.params  # noqa: F821
paths = [snakemake.output.pdf, snakemake.output.png]  # noqa: F821

if rule in ("fig2", "fig3"):
    from milad.data import read_qm9_subset
    from milad.qm9 import descriptors, find_molecule

    molecule = find_molecule(read_qm9_subset(snakemake.input[0]), smiles=params.smiles)  # noqa: F821
    name = f"{molecule.get_chemical_formula()} ({params.smiles}, QM9 ID {molecule.info['qm9_id']})"
    if rule == "fig2":
        axis, slices, plane, weights = plots.reconstruction_slices(
            molecule, params.orders, cutoff=float(params.cutoff))
        plots.plot_reconstructions(axis, slices, plane, weights, paths,
                                   title=f"{name}: eq. 14 reconstructions by maximum order N "
                                         "(paper Fig. 2)",
                                   symbols=molecule.get_chemical_symbols())
    else:
        plain, _ = descriptors(params.descriptor)
        plots.plot_peak_finding(molecule, plain, paths)
    print(f"{rule}: {name}")
elif rule == "si_fig1":
    validation = pd.concat([read_csv(p) for p in snakemake.input],  # noqa: F821
                           ignore_index=True)
    plots.plot_rdkit_validation(validation, paths)
else:
    table = read_csv(snakemake.input[0])  # noqa: F821
    threshold = float(params.threshold)
    if rule == "fig5":
        plots.plot_decoding(table, paths, threshold=threshold)
    elif rule == "fig6":
        plots.plot_species_recovery(table, paths, threshold=threshold)
    elif rule == "fig7":
        plots.plot_point_groups(table, paths, threshold=threshold)
    elif rule == "si_fig2":
        plots.plot_rdkit_vs_fingerprint(table, paths, max_atoms=int(params.max_atoms),
                                        threshold=threshold)
    else:
        raise ValueError(f"qm9_figure.py does not draw rule {rule}")
print("written", paths)
