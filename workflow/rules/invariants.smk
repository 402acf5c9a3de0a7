# Rotation invariants of Zernike moments (paper section II B 2 and II C) and Table I.
# The science lives in milad.invariants; the scripts only call it and write files.


rule generate_invariants:
    """Generate the algebraically independent Zernike invariant set of order n_max from scratch."""
    output:
        results("invariants/zernike_nmax{n_max}.json.gz"),
    log:
        results("logs/generate_invariants/nmax{n_max}.log"),
    benchmark:
        results("benchmarks/generate_invariants/nmax{n_max}.tsv")
    params:
        seed=config["rank_seed"],
    threads: 1
    resources:
        mem_mb=lambda wildcards: 1000 if int(wildcards.n_max) <= 8 else 4000,
        runtime=lambda wildcards: 5 if int(wildcards.n_max) <= 8 else 30,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/generate_invariants.py"


rule compare_invariants:
    """Check that a regenerated set equals the shipped one: same labels, exact coefficients."""
    input:
        generated=results("invariants/zernike_nmax{n_max}.json.gz"),
    output:
        report=report(
            results("invariants/zernike_nmax{n_max}.comparison.json"),
            caption="../report/invariants.rst",
            category="Invariant sets",
            labels={"n_max": "{n_max}", "file": "comparison with the shipped set"},
        ),
    log:
        results("logs/compare_invariants/nmax{n_max}.log"),
    benchmark:
        results("benchmarks/compare_invariants/nmax{n_max}.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/compare_invariants.py"


rule generate_chiral_invariants:
    """Generate the parity-odd invariants of the chiral fingerprint of order n_max from scratch."""
    output:
        results("invariants/zernike_nmax{n_max}_chiral.json.gz"),
    log:
        results("logs/generate_chiral_invariants/nmax{n_max}.log"),
    benchmark:
        results("benchmarks/generate_chiral_invariants/nmax{n_max}.tsv")
    params:
        seed=config["rank_seed"],
        chiral=True,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/generate_invariants.py"


rule compare_chiral_invariants:
    """Check that a regenerated parity-odd set equals the shipped one: labels, exact coefficients."""
    input:
        generated=results("invariants/zernike_nmax{n_max}_chiral.json.gz"),
    output:
        report=report(
            results("invariants/zernike_nmax{n_max}_chiral.comparison.json"),
            caption="../report/invariants_chiral.rst",
            category="Invariant sets",
            labels={"n_max": "{n_max}", "file": "chiral set: comparison with the shipped set"},
        ),
    log:
        results("logs/compare_chiral_invariants/nmax{n_max}.log"),
    benchmark:
        results("benchmarks/compare_chiral_invariants/nmax{n_max}.tsv")
    params:
        chiral=True,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/compare_invariants.py"


rule invariants:
    """Named target: every configured invariant set, and its parity-odd (chiral) part,
    regenerated and checked."""
    localrule: True
    input:
        expand(
            results("invariants/zernike_nmax{n_max}{part}.comparison.json"),
            n_max=config["invariant_n_max"],
            part=["", "_chiral"],
        ),


rule table1:
    """Paper Table I: all / linearly / algebraically independent invariants per l_max."""
    output:
        csv=report(
            results("tables/table1.csv"),
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table I", "format": "CSV"},
        ),
        md=results("tables/table1.md"),
        html=report(
            results("tables/table1.html"),
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table I", "format": "HTML"},
        ),
    log:
        results("logs/table1.log"),
    benchmark:
        results("benchmarks/table1.tsv")
    params:
        l_max=config["table1_l_max"],
        n_min=config["table1_n_min"],
        seed=config["rank_seed"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=lambda wildcards, attempt: 10 * attempt,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/table1.py"
