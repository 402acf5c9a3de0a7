# The QM9 decoding experiment (paper section IV A, Figs. 2, 3, 5, 6, 7; supplementary
# "Reconstruction experiment" and RDKit validation, SI Figs. 1 and 2). The science lives in
# milad.qm9 (one decode, the tidy table, the summary), milad.decode, milad.compare and
# milad.plots, the paper's numbers in milad.paper; the scripts only call it and write files.
#
#   qm9_subset            the 77 molecules: shipped, or regenerated (qm9pack, or figshare's
#                         dsgdb9nsd.xyz.tar.bz2 from a local copy or downloaded) and checked
#                         equal to the shipped file
#   qm9_point_groups      point group of every molecule (Fig. 7)
#   qm9_decode            ONE decode: molecule x mode x attempt, its own seed; "two" takes the
#                         "positions" decode of the same molecule and attempt
#   qm9_rdkit_validation  SI Fig. 1 data, positions only / with species
#   qm9_decodes           the tidy table results/qm9/decodes.csv
#   qm9_summary_table     results/tables/qm9_summary.*
#   fig2, fig3, fig5, fig6, fig7, si_fig1, si_fig2, qm9_summary (named targets)
#
# qm9_summary (and `all`) request every decode result itself: Snakemake (>= 7.7) does not
# remake a deleted intermediate file whose dependents are up to date, so a target must name
# the decodes for a deleted one to be redone (with the table, figures and summary after it).
#
# One decode per job, so `--cores N` or a cluster runs N of them at once; the decode jobs are
# single-threaded (BLAS pinned to one thread) and ask for wall time by molecule size.




wildcard_constraints:
    mode=r"positions|single|two",
    qm9_id=r"\d+",
    attempt=r"\d+",
    kind=r"positions|species",


rule qm9_subset:
    """The paper's 77 QM9 molecules from the configured source; a regenerated subset must
    equal the shipped milad/data/qm9_subset.extxyz or the job fails listing the differences.
    Source figshare: the archive is taken from the local copy or downloaded (checked against
    figshare's published MD5, and a sha256 where one is configured) into resources/qm9/, so the
    job then runs on the machine running Snakemake (a cluster's compute nodes may have no
    network)."""
    input:
        shipped=QM9_SHIPPED,
    output:
        subset=QM9_SUBSET,
        manifest=results("qm9/subset.json"),
    log:
        results("logs/qm9/subset.log"),
    benchmark:
        results("benchmarks/qm9/subset.tsv")
    params:
        source=QM9["source"],
        archive=QM9_ARCHIVE,
        figshare={**QM9["figshare"], "mirror": repo_path(QM9["figshare"]["mirror"])},
    localrule: QM9["source"] == "figshare"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_subset.py"


rule qm9_point_groups:
    """Point group of every molecule decoded (paper Fig. 7)."""
    input:
        QM9_SUBSET,
    output:
        results("qm9/point_groups.csv"),
    log:
        results("logs/qm9/point_groups.log"),
    benchmark:
        results("benchmarks/qm9/point_groups.tsv")
    params:
        molecules=QM9_IDS,
        tolerance=QM9["point_group_tolerance"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_point_groups.py"


rule qm9_decode:
    """One attempt at decoding one molecule's fingerprint in one mode, compared with the
    original: the decoded structure (extxyz) and its record (JSON)."""
    input:
        unpack(_qm9_decode_input),
    output:
        structure=results("qm9/decodes/{mode}/{qm9_id}_{attempt}.extxyz"),
        record=results("qm9/decodes/{mode}/{qm9_id}_{attempt}.json"),
    log:
        results("logs/qm9/decode/{mode}/{qm9_id}_{attempt}.log"),
    benchmark:
        results("benchmarks/qm9/decode/{mode}/{qm9_id}_{attempt}.tsv")
    params:
        seed=QM9["seed"],
        threshold=QM9["threshold"],
        descriptor=QM9["descriptor"],
        decode=lambda wildcards: qm9_decode_effort(wildcards.mode),
    threads: 1
    resources:
        mem_mb=_qm9_decode_mem_mb,
        runtime=_qm9_decode_minutes,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_decode.py"


rule qm9_rdkit_validation:
    """SI Fig. 1 data: rotated, relabelled copies of every molecule and pairs of different
    molecules of one size, compared by RDKit RMSD and by fingerprint RMSD."""
    input:
        QM9_SUBSET,
    output:
        results("qm9/rdkit_validation_{kind}.csv"),
    log:
        results("logs/qm9/rdkit_validation_{kind}.log"),
    benchmark:
        results("benchmarks/qm9/rdkit_validation_{kind}.tsv")
    params:
        molecules=QM9_IDS,
        trials=QM9["rdkit_validation"]["trials"],
        seed=QM9["rdkit_validation"]["seed"],
        descriptor=QM9["descriptor"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_rdkit_validation.py"


rule qm9_decodes:
    """The tidy table: one row per molecule x mode x attempt (results/qm9/decodes.csv, and
    .parquet where pyarrow is installed)."""
    input:
        records=_qm9_decodes("json"),
        point_groups=results("qm9/point_groups.csv"),
    output:
        csv=results("qm9/decodes.csv"),
        parquet=results("qm9/decodes.parquet") if QM9_PARQUET else [],
    log:
        results("logs/qm9/decodes.log"),
    benchmark:
        results("benchmarks/qm9/decodes.tsv")
    params:
        threshold=QM9["threshold"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_table.py"


rule fig2:
    """Paper Fig. 2: eq. 14 reconstructions of urea in its plane by maximum order N."""
    input:
        QM9_SUBSET,
    output:
        pdf=_qm9_figure("fig2", "pdf", "fig2.rst", "Fig. 2 reconstruction"),
        png=_qm9_figure("fig2", "png", "fig2.rst", "Fig. 2 reconstruction"),
    log:
        results("logs/fig2.log"),
    benchmark:
        results("benchmarks/fig2.tsv")
    params:
        smiles=QM9["fig2"]["smiles"],
        orders=QM9["fig2"]["orders"],
        cutoff=QM9["descriptor"]["cutoff"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule fig3:
    """Paper Fig. 3: peak finding (Algorithm 2) step by step."""
    input:
        QM9_SUBSET,
    output:
        pdf=_qm9_figure("fig3", "pdf", "fig3.rst", "Fig. 3 peak finding"),
        png=_qm9_figure("fig3", "png", "fig3.rst", "Fig. 3 peak finding"),
    log:
        results("logs/fig3.log"),
    benchmark:
        results("benchmarks/fig3.tsv")
    params:
        smiles=QM9["fig3"]["smiles"],
        descriptor=QM9["descriptor"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule fig5:
    """Paper Fig. 5: fingerprint RMSD of the decodes, positions only and with species."""
    input:
        results("qm9/decodes.csv"),
    output:
        pdf=_qm9_figure("fig5", "pdf", "fig5.rst", "Fig. 5 decoding"),
        png=_qm9_figure("fig5", "png", "fig5.rst", "Fig. 5 decoding"),
    log:
        results("logs/fig5.log"),
    benchmark:
        results("benchmarks/fig5.tsv")
    params:
        threshold=QM9["threshold"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule fig6:
    """Paper Fig. 6: species from a second fingerprint, next to positions only."""
    input:
        results("qm9/decodes.csv"),
    output:
        pdf=_qm9_figure("fig6", "pdf", "fig6.rst", "Fig. 6 species recovery"),
        png=_qm9_figure("fig6", "png", "fig6.rst", "Fig. 6 species recovery"),
    log:
        results("logs/fig6.log"),
    benchmark:
        results("benchmarks/fig6.tsv")
    params:
        threshold=QM9["threshold"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule fig7:
    """Paper Fig. 7: proportion of molecules decoded per point group."""
    input:
        results("qm9/decodes.csv"),
    output:
        pdf=_qm9_figure("fig7", "pdf", "fig7.rst", "Fig. 7 point groups"),
        png=_qm9_figure("fig7", "png", "fig7.rst", "Fig. 7 point groups"),
    log:
        results("logs/fig7.log"),
    benchmark:
        results("benchmarks/fig7.tsv")
    params:
        threshold=QM9["threshold"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule si_fig1:
    """Supplementary Fig. 1: RDKit RMSD and fingerprint RMSD of copies and of pairs."""
    input:
        expand(results("qm9/rdkit_validation_{kind}.csv"), kind=QM9_VALIDATION_KINDS),
    output:
        pdf=_qm9_figure("si_fig1", "pdf", "si_fig1.rst", "SI Fig. 1 RDKit validation"),
        png=_qm9_figure("si_fig1", "png", "si_fig1.rst", "SI Fig. 1 RDKit validation"),
    log:
        results("logs/si_fig1.log"),
    benchmark:
        results("benchmarks/si_fig1.tsv")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule si_fig2:
    """Supplementary Fig. 2: RDKit RMSD against fingerprint RMSD of the small decodes."""
    input:
        results("qm9/decodes.csv"),
    output:
        pdf=_qm9_figure("si_fig2", "pdf", "si_fig2.rst", "SI Fig. 2 RDKit vs fingerprint"),
        png=_qm9_figure("si_fig2", "png", "si_fig2.rst", "SI Fig. 2 RDKit vs fingerprint"),
    log:
        results("logs/si_fig2.log"),
    benchmark:
        results("benchmarks/si_fig2.tsv")
    params:
        threshold=QM9["threshold"],
        max_atoms=QM9["si_fig2_max_atoms"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_figure.py"


rule qm9_summary_table:
    """The headline decoding numbers per mode and of the RDKit validation beside the paper's
    (milad.paper.DECODING, RDKIT_VALIDATION), saying where this run falls short."""
    input:
        decodes=results("qm9/decodes.csv"),
        validation=expand(results("qm9/rdkit_validation_{kind}.csv"), kind=QM9_VALIDATION_KINDS),
    output:
        md=results("tables/qm9_summary.md"),
        csv=captioned(results("tables/qm9_summary.csv"), "qm9_summary.rst", "Tables",
                        table="QM9 decoding summary", format="CSV"),
        html=captioned(results("tables/qm9_summary.html"), "qm9_summary.rst", "Tables",
                         table="QM9 decoding summary", format="HTML"),
    log:
        results("logs/qm9_summary.log"),
    benchmark:
        results("benchmarks/qm9_summary.tsv")
    params:
        threshold=QM9["threshold"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/qm9_summary.py"


rule qm9_summary:
    """Named target: the whole QM9 experiment. The summary table and the figures, and every
    file they rest on (the subset, each decode's structure and record, the point groups, the
    tidy table, the validation tables), so that a deleted one is made again, with what
    depends on it."""
    localrule: True
    input:
        rules.qm9_summary_table.output,
        rules.fig2.output,
        rules.fig3.output,
        rules.fig5.output,
        rules.fig6.output,
        rules.fig7.output,
        rules.si_fig1.output,
        rules.si_fig2.output,
        QM9_SUBSET,
        results("qm9/point_groups.csv"),
        rules.qm9_decodes.output,
        _qm9_decodes("extxyz"),
        _qm9_decodes("json"),
        expand(results("qm9/rdkit_validation_{kind}.csv"), kind=QM9_VALIDATION_KINDS),
