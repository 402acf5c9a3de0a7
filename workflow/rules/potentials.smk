# Per-element neural-network potentials on the mlearn data (paper section IV B, Fig. 8,
# Tables II and III, supplementary Table I). The science lives in milad.potential (model,
# training, calculator) and milad.data (fetching and checking the data); the scripts only
# call it and write files.
#
#   mlearn_data        per element and split: the mlearn JSON from the copy shipped with milad,
#                      the mirror or GitHub at the pinned commit, sha256-checked, into
#                      resources/mlearn/
#   mlearn_inventory   which files could be had
#   potential_fingerprints, potential_train, potential_evaluate, potential_figures (per element)
#   table2, table3, si_table1, parity_plots, md_nve (named targets)
#
# The DAG is the same whether or not a file can be had: for an element without training data
# (Ni and Cu: not shipped with milad; offline) every per-element job still runs and writes a
# stand-in that says so (milad.potential.mark_unavailable; the figures carry the message), the
# tables list the element as "missing" with the reason, and every other element is unaffected.




wildcard_constraints:
    element=r"[A-Z][a-z]?",
    split=r"training|test",


rule mlearn_data:
    """One mlearn file: the copy shipped with milad, else the mirror's, else downloaded at the
    pinned commit; sha256-checked. For a file milad does not ship, the mirror file's digest is
    a param, so that a repaired or replaced mirror file reruns the job. The download switch is
    not (the script reads it from the configuration): configurations that differ only there
    share resources/ without rerunning each other's fetches (after switching downloads on,
    `--forcerun mlearn_data` fetches what was missing).

    Never fails for a missing or corrupt file: its manifest says available: false and why.
    """
    output:
        directory("resources/mlearn/{element}/{split}"),
    log:
        results("logs/potentials/mlearn_data/{element}_{split}.log"),
    benchmark:
        results("benchmarks/potentials/mlearn_data/{element}_{split}.tsv")
    params:
        mirror=repo_path(POT["data"]["mirror"]),
        mirror_sha256=mlearn_mirror_sha256,
        sha256=lambda wildcards: POT["data"]["sha256"].get(f"{wildcards.element}/{wildcards.split}"),
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_fetch.py"


rule mlearn_inventory:
    """Which mlearn files are available, and why the others are not."""
    input:
        expand("resources/mlearn/{element}/{split}", element=POT_ELEMENTS, split=POT_SPLITS),
    output:
        results("potentials/inventory.json"),
    log:
        results("logs/potentials/mlearn_inventory.log"),
    benchmark:
        results("benchmarks/potentials/mlearn_inventory.tsv")
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_inventory.py"


rule potential_fingerprints:
    """MILAD fingerprints of every atom-centred environment and their pair derivatives."""
    input:
        "resources/mlearn/{element}/{split}",
    output:
        results("potentials/{element}/fingerprints_{split}.npz"),
    log:
        results("logs/potentials/fingerprints/{element}_{split}.log"),
    benchmark:
        results("benchmarks/potentials/fingerprints/{element}_{split}.tsv")
    params:
        descriptor=pot_descriptor,
        max_structures=POT["data"]["max_structures"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_fingerprints.py"


rule potential_train:
    """Fit one element's network; early stopping on a validation split of the TRAINING file
    (the test file is not an input of this rule)."""
    input:
        results("potentials/{element}/fingerprints_training.npz"),
    output:
        model=results("potentials/{element}/model.pt"),
        history=results("potentials/{element}/history.csv"),
    log:
        results("logs/potentials/train/{element}.log"),
    benchmark:
        results("benchmarks/potentials/train/{element}.tsv")
    params:
        settings=lambda wildcards: pot_paper_settings(wildcards.element),
    threads: POT["training"]["threads"]
    resources:
        mem_mb=8000,
        runtime=lambda wildcards: int(
            _pot_training(wildcards.element)["restarts"]
            * _pot_training(wildcards.element)["max_minutes"]
        ) + 15,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_train.py"


rule potential_evaluate:
    """RMSEs on the fitted, validation and test structures; predictions for the parity plots."""
    input:
        model=results("potentials/{element}/model.pt"),
        training=results("potentials/{element}/fingerprints_training.npz"),
        test=results("potentials/{element}/fingerprints_test.npz"),
    output:
        metrics=results("potentials/{element}/metrics.json"),
        predictions=results("potentials/{element}/predictions.npz"),
    log:
        results("logs/potentials/evaluate/{element}.log"),
    benchmark:
        results("benchmarks/potentials/evaluate/{element}.tsv")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=15,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_evaluate.py"


rule potential_figures:
    """Parity plots (energies, force components) and the learning curve of one element."""
    input:
        metrics=results("potentials/{element}/metrics.json"),
        predictions=results("potentials/{element}/predictions.npz"),
        history=results("potentials/{element}/history.csv"),
    output:
        parity_png=captioned(results("figures/potentials/parity_{element}.png"), "parity.rst",
                               "Potentials", element="{element}", figure="parity", format="PNG"),
        parity_pdf=captioned(results("figures/potentials/parity_{element}.pdf"), "parity.rst",
                               "Potentials", element="{element}", figure="parity", format="PDF"),
        curve_png=captioned(results("figures/potentials/learning_curve_{element}.png"),
                              "learning_curve.rst", "Potentials", element="{element}",
                              figure="learning curve", format="PNG"),
        curve_pdf=captioned(results("figures/potentials/learning_curve_{element}.pdf"),
                              "learning_curve.rst", "Potentials", element="{element}",
                              figure="learning curve", format="PDF"),
    log:
        results("logs/potentials/figures/{element}.log"),
    benchmark:
        results("benchmarks/potentials/figures/{element}.tsv")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_figures.py"


rule table2:
    """Paper Table II as used: data sizes, cutoffs, alpha and layers per element."""
    input:
        inventory=results("potentials/inventory.json"),
        metrics=expand(results("potentials/{element}/metrics.json"), element=POT_ELEMENTS),
    output:
        md=results("tables/table2.md"),
        csv=captioned(results("tables/table2.csv"), "table2.rst", "Tables", table="Table II",
                        format="CSV"),
        html=captioned(results("tables/table2.html"), "table2.rst", "Tables",
                         table="Table II", format="HTML"),
    log:
        results("logs/table2.log"),
    benchmark:
        results("benchmarks/table2.tsv")
    params:
        table="table2",
        elements=POT_ELEMENTS,
        settings=POT["settings"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_tables.py"


rule table3:
    """Paper Table III: test RMSEs of the peers (from the paper) and of this pipeline; its notes
    say how much of each test RMSE one structure makes."""
    input:
        inventory=results("potentials/inventory.json"),
        metrics=expand(results("potentials/{element}/metrics.json"), element=POT_ELEMENTS),
        tuned=expand(results("potentials/{element}/tuned/metrics.json"), element=POT_ELEMENTS),
        predictions=expand(results("potentials/{element}/predictions.npz"), element=POT_ELEMENTS),
        tuned_predictions=expand(results("potentials/{element}/tuned/predictions.npz"),
                                 element=POT_ELEMENTS),
        selection=results("tables/potential_selection.csv"),
    output:
        md=results("tables/table3.md"),
        csv=captioned(results("tables/table3.csv"), "table3.rst", "Tables", table="Table III",
                        format="CSV"),
        tex=captioned(results("tables/table3.tex"), "table3.rst", "Tables", table="Table III",
                        format="LaTeX"),
        html=captioned(results("tables/table3.html"), "table3.rst", "Tables",
                         table="Table III", format="HTML"),
    log:
        results("logs/table3.log"),
    benchmark:
        results("benchmarks/table3.tsv")
    params:
        table="table3",
        elements=POT_ELEMENTS,
        settings=POT["settings"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_tables.py"


rule si_table1:
    """Supplementary Table I: training and test RMSEs of the peers and of this pipeline."""
    input:
        inventory=results("potentials/inventory.json"),
        metrics=expand(results("potentials/{element}/metrics.json"), element=POT_ELEMENTS),
        tuned=expand(results("potentials/{element}/tuned/metrics.json"), element=POT_ELEMENTS),
        selection=results("tables/potential_selection.csv"),
    output:
        md=results("tables/si_table1.md"),
        csv=captioned(results("tables/si_table1.csv"), "si_table1.rst", "Tables",
                        table="SI Table I", format="CSV"),
        tex=captioned(results("tables/si_table1.tex"), "si_table1.rst", "Tables",
                        table="SI Table I", format="LaTeX"),
        html=captioned(results("tables/si_table1.html"), "si_table1.rst", "Tables",
                         table="SI Table I", format="HTML"),
    log:
        results("logs/si_table1.log"),
    benchmark:
        results("benchmarks/si_table1.tsv")
    params:
        table="si_table1",
        elements=POT_ELEMENTS,
        settings=POT["settings"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_tables.py"


rule parity_plots:
    """Named target: parity plots and learning curves of every element, with an index."""
    input:
        inventory=results("potentials/inventory.json"),
        figures=expand(
            results("figures/potentials/{kind}_{element}.{ext}"),
            kind=["parity", "learning_curve"], element=POT_ELEMENTS, ext=["png", "pdf"],
        ),
    output:
        results("figures/potentials/index.md"),
    log:
        results("logs/parity_plots.log"),
    benchmark:
        results("benchmarks/parity_plots.tsv")
    params:
        elements=POT_ELEMENTS,
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_index.py"


rule md_nve:
    """Short NVE molecular dynamics with a trained potential (tuned or the paper settings',
    potentials.md.model) through ASE: energy drift."""
    input:
        inventory=results("potentials/inventory.json"),
        data=f"resources/mlearn/{POT['md']['element']}/training",
        model=(results(f"potentials/{POT['md']['element']}/tuned/model.pt")
               if POT["md"]["model"] == "tuned"
               else results(f"potentials/{POT['md']['element']}/model.pt")),
    output:
        json=captioned(results("tables/md_nve.json"), "md_nve.rst", "Potentials",
                         figure="NVE run", format="JSON"),
        md=results("tables/md_nve.md"),
        png=captioned(results("figures/potentials/md_nve.png"), "md_nve.rst", "Potentials",
                        figure="NVE run", format="PNG"),
    log:
        results("logs/md_nve.log"),
    benchmark:
        results("benchmarks/md_nve.tsv")
    params:
        md=POT["md"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_md.py"
