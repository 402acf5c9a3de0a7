# Enantiomers (beyond the paper, which notes that its fingerprints cannot tell them apart): the
# chiral molecules of the QM9 subset decoded from the chiral fingerprint (parity-odd invariants
# appended, Descriptor(chiral=True)) and from the default one. The science lives in
# milad.chirality (stereocentres by RDKit, one decode and its hand, the table) and
# milad.plots.chirality; the scripts only call it and write files.
#
#   chirality_molecules (checkpoint)  the stereocentres of every molecule looked at
#   chirality_decode                  ONE decode: molecule x fingerprint x attempt
#   chirality_table                   results/tables/chirality.{md,csv}
#   fig_chirality                     results/figures/chirality.{png,pdf}
#   chirality (named target)          all of it, every decode named (see qm9.smk on why)


wildcard_constraints:
    fingerprint=r"chiral|default",


checkpoint chirality_molecules:
    """The stereocentres (with CIP labels) of every molecule looked at, perceived by RDKit
    from the 3D structure; the chiral ones are decoded."""
    input:
        QM9_SUBSET,
    output:
        results("chirality/molecules.csv"),
    log:
        results("logs/chirality/molecules.log"),
    benchmark:
        results("benchmarks/chirality/molecules.tsv")
    params:
        molecules=CHIR_IDS,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/chirality_molecules.py"


rule chirality_decode:
    """One attempt at decoding one chiral molecule from its chiral or default fingerprint,
    compared with the original and its mirror image: the structure (extxyz) and its record."""
    input:
        subset=QM9_SUBSET,
    output:
        structure=results("chirality/decodes/{fingerprint}/{qm9_id}_{attempt}.extxyz"),
        record=results("chirality/decodes/{fingerprint}/{qm9_id}_{attempt}.json"),
    log:
        results("logs/chirality/decode/{fingerprint}/{qm9_id}_{attempt}.log"),
    benchmark:
        results("benchmarks/chirality/decode/{fingerprint}/{qm9_id}_{attempt}.tsv")
    params:
        seed=CHIR["seed"],
        threshold=CHIR["threshold"],
        structure_tolerance=CHIR["structure_tolerance"],
        mode=CHIR["mode"],
        descriptor=QM9["descriptor"],
        decode=CHIR["decode"],
    threads: 1
    resources:
        mem_mb=_qm9_decode_mem_mb,
        runtime=_chirality_minutes,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/chirality_decode.py"


rule chirality_table:
    """Every decode: the hand it returned, its fingerprint and structure RMSDs, the CIP labels;
    the notes say whether every success of the chiral fingerprint is the original."""
    input:
        molecules=results("chirality/molecules.csv"),
        records=_chirality_decodes,
    output:
        md=results("tables/chirality.md"),
        csv=captioned(results("tables/chirality.csv"), "chirality.rst", "Tables",
                      table="Enantiomers", format="CSV"),
    log:
        results("logs/chirality/table.log"),
    benchmark:
        results("benchmarks/chirality/table.tsv")
    params:
        threshold=CHIR["threshold"],
        structure_tolerance=CHIR["structure_tolerance"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/chirality_table.py"


rule fig_chirality:
    """RMSD to the original against RMSD to the mirror image of every decode; the successful
    decodes by hand, per fingerprint."""
    input:
        results("tables/chirality.csv"),
    output:
        pdf=captioned(results("figures/chirality.pdf"), "chirality.rst", "Enantiomers",
                      figure="Enantiomers", format="PDF"),
        png=captioned(results("figures/chirality.png"), "chirality.rst", "Enantiomers",
                      figure="Enantiomers", format="PNG"),
    log:
        results("logs/fig_chirality.log"),
    benchmark:
        results("benchmarks/fig_chirality.tsv")
    params:
        structure_tolerance=CHIR["structure_tolerance"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/fig_chirality.py"


rule chirality:
    """Named target: the table and the figure, and every decode they rest on."""
    localrule: True
    input:
        rules.chirality_table.output,
        rules.fig_chirality.output,
        lambda wildcards: _chirality_decodes(wildcards, "json"),
        lambda wildcards: _chirality_decodes(wildcards, "extxyz"),
