# Model selection for the "MILAD, tuned" row of Table III, honest by construction: every
# configuration of potentials.selection is scored by k-fold cross-validation over each
# element's TRAINING file; the chosen one is refitted on the whole training file and only
# then evaluated on the test file. No rule of this file before potential_evaluate_tuned reads
# a test file (tests/test_workflow.py checks this on the DAG).
#
#   potential_variant_fingerprints  fingerprints of a descriptor variant (n_max 10, Gaussian,
#                                   several radii) per element and split
#   potential_cv                    one element x configuration x fold: fit on the other folds,
#                                   RMSEs on the held-out fold
#   potential_choice (checkpoint)   per element: the configuration with the lowest CV score
#   potential_selection             results/tables/potential_selection.{md,csv}: every
#                                   configuration with its CV RMSEs, the chosen one marked
#   ablation                        results/tables/ablation.{md,csv}, figures/potentials/ablation.png
#   potential_train_tuned, potential_evaluate_tuned   the chosen configuration per element


wildcard_constraints:
    variant=r"(?!paper/)[A-Za-z][A-Za-z0-9]*",
    configuration=r"[A-Za-z][A-Za-z0-9_]*",
    fold=r"\d+",


rule potential_variant_fingerprints:
    """MILAD fingerprints and pair derivatives of one descriptor variant."""
    input:
        "resources/mlearn/{element}/{split}",
    output:
        results("potentials/{element}/variants/{variant}/fingerprints_{split}.npz"),
    log:
        results("logs/potentials/fingerprints/{element}_{variant}_{split}.log"),
    benchmark:
        results("benchmarks/potentials/fingerprints/{element}_{variant}_{split}.tsv")
    params:
        descriptor=lambda wildcards: pot_variant_descriptor(wildcards.element, wildcards.variant),
        max_structures=POT["data"]["max_structures"],
    threads: 1
    resources:
        mem_mb=12000,
        runtime=60,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_fingerprints.py"


rule potential_cv:
    """One cross-validation fold: fit on the other folds of the training file, RMSEs on this
    one (the fit's early stopping watches a split of its own training part)."""
    input:
        lambda wildcards: pot_fingerprints(
            wildcards.element,
            SEL["configurations"][wildcards.configuration]["descriptor"],
            "training",
        ),
    output:
        results("potentials/{element}/selection/{configuration}/fold{fold}.json"),
    log:
        results("logs/potentials/selection/{element}_{configuration}_{fold}.log"),
    benchmark:
        results("benchmarks/potentials/selection/{element}_{configuration}_{fold}.tsv")
    params:
        settings=lambda wildcards: pot_configuration(wildcards.element, wildcards.configuration),
        folds=len(SEL_FOLDS),
        seed=SEL["seed"],
    threads: POT["training"]["threads"]
    resources:
        mem_mb=12000,
        runtime=lambda wildcards: pot_fit_minutes(wildcards.element, wildcards.configuration),
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_cv.py"


checkpoint potential_choice:
    """One element's chosen configuration: the lowest score over its CV records."""
    input:
        lambda wildcards: pot_cv_records(wildcards.element),
    output:
        results("potentials/{element}/choice.json"),
    log:
        results("logs/potentials/choice/{element}.log"),
    benchmark:
        results("benchmarks/potentials/choice/{element}.tsv")
    params:
        baseline=SEL["baseline"],
        configurations=SEL_CONFIGURATIONS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_selection.py"


rule potential_selection:
    """Every configuration's pooled CV RMSEs per element, the score relative to the baseline
    and the chosen configuration (the lowest score)."""
    input:
        pot_cv_records(),
    output:
        md=results("tables/potential_selection.md"),
        csv=captioned(results("tables/potential_selection.csv"), "potential_selection.rst",
                      "Tables", table="Model selection", format="CSV"),
    log:
        results("logs/potential_selection.log"),
    benchmark:
        results("benchmarks/potential_selection.tsv")
    params:
        baseline=SEL["baseline"],
        configurations=SEL_CONFIGURATIONS,
        mode=SEL["mode"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_selection.py"


rule ablation:
    """What each lever (n_max, feature, radii, scaling, ensemble) does to the CV RMSEs."""
    input:
        pot_cv_records(),
    output:
        md=results("tables/ablation.md"),
        csv=captioned(results("tables/ablation.csv"), "ablation.rst", "Tables",
                      table="Ablation", format="CSV"),
        png=captioned(results("figures/potentials/ablation.png"), "ablation.rst", "Potentials",
                      figure="ablation", format="PNG"),
        pdf=captioned(results("figures/potentials/ablation.pdf"), "ablation.rst", "Potentials",
                      figure="ablation", format="PDF"),
    log:
        results("logs/ablation.log"),
    benchmark:
        results("benchmarks/ablation.tsv")
    params:
        baseline=SEL["baseline"],
        configurations=SEL_CONFIGURATIONS,
        levers={lever: list(pair) for lever, pair in SEL["ablation"].items()
                if set(pair) <= set(SEL_CONFIGURATIONS)},
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_ablation.py"


rule potential_train_tuned:
    """Refit the chosen configuration on the whole training file (the test file is not an
    input of this rule)."""
    input:
        data=lambda wildcards: pot_fingerprints(
            wildcards.element, pot_chosen(wildcards.element)["variant"], "training"
        ),
        choice=results("potentials/{element}/choice.json"),
    output:
        model=results("potentials/{element}/tuned/model.pt"),
        history=results("potentials/{element}/tuned/history.csv"),
    log:
        results("logs/potentials/train/{element}_tuned.log"),
    benchmark:
        results("benchmarks/potentials/train/{element}_tuned.tsv")
    params:
        settings=lambda wildcards: pot_chosen(wildcards.element),
    threads: POT["training"]["threads"]
    resources:
        mem_mb=12000,
        # the chosen configuration is not known when jobs are planned: the longest of them
        runtime=lambda wildcards: max(pot_fit_minutes(wildcards.element, c, refit=True)
                                      for c in SEL_CONFIGURATIONS),
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_train.py"


rule potential_evaluate_tuned:
    """RMSEs of the tuned potential on the fitted, validation and test structures."""
    input:
        model=results("potentials/{element}/tuned/model.pt"),
        training=lambda wildcards: pot_fingerprints(
            wildcards.element, pot_chosen(wildcards.element)["variant"], "training"
        ),
        test=lambda wildcards: pot_fingerprints(
            wildcards.element, pot_chosen(wildcards.element)["variant"], "test"
        ),
    output:
        metrics=results("potentials/{element}/tuned/metrics.json"),
        predictions=results("potentials/{element}/tuned/predictions.npz"),
    log:
        results("logs/potentials/evaluate/{element}_tuned.log"),
    benchmark:
        results("benchmarks/potentials/evaluate/{element}_tuned.tsv")
    threads: 1
    resources:
        mem_mb=12000,
        runtime=15,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/potential_evaluate.py"
