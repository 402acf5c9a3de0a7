# Figures of the invariants part of the paper. The completeness experiment lives in
# milad.completeness, the drawing in milad.plots, the paper's numbers in milad.paper.


rule fig_completeness:
    """Paper Fig. 1 (section II E): Phi_B - Phi_B' for the Pozdnyakov et al. pair; an extra
    panel: B and its mirror image with the chiral fingerprint."""
    input:
        invariants=results(f"invariants/zernike_nmax{config['completeness_n_max']}.json.gz"),
        # only plot with a set that was checked against the shipped one
        checked=results(f"invariants/zernike_nmax{config['completeness_n_max']}.comparison.json"),
        # the parity-odd invariants of the mirror-pair panel, also checked
        chiral=results(f"invariants/zernike_nmax{config['completeness_n_max']}_chiral.json.gz"),
        chiral_checked=results(
            f"invariants/zernike_nmax{config['completeness_n_max']}_chiral.comparison.json"),
    output:
        pdf=report(
            results("figures/fig_completeness.pdf"),
            caption="../report/fig_completeness.rst",
            category="Figures",
            labels={"figure": "Fig. 1 completeness", "format": "PDF"},
        ),
        png=report(
            results("figures/fig_completeness.png"),
            caption="../report/fig_completeness.rst",
            category="Figures",
            labels={"figure": "Fig. 1 completeness", "format": "PNG"},
        ),
        csv=report(
            results("figures/fig_completeness.csv"),
            caption="../report/fig_completeness.rst",
            category="Figures",
            labels={"figure": "Fig. 1 completeness", "format": "CSV (data)"},
        ),
        mirror_csv=report(
            results("figures/fig_completeness_chiral.csv"),
            caption="../report/fig_completeness.rst",
            category="Figures",
            labels={"figure": "Fig. 1 completeness", "format": "CSV (mirror pair data)"},
        ),
    log:
        results("logs/fig_completeness.log"),
    benchmark:
        results("benchmarks/fig_completeness.tsv")
    params:
        n_max=config["completeness_n_max"],
        tolerance=config["completeness_tolerance"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/milad.yaml"
    script:
        "../scripts/fig_completeness.py"
