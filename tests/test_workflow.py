"""The Snakemake pipeline: config validation, planning, lint, the rules' declarations, a real
quick run, the provenance of every table, the report, and the execution profiles.

Every run goes into a temporary --directory so the repository's results/ is never touched.
The checks on rules go over every rule Snakemake loads, so rules added later are held to the
same standard.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from figure_files import assert_figure_files
from milad.provenance import read_csv
from workflow_support import (
    PROFILES,
    QUICK_CONFIG,
    QUICK_RESULTS,
    ROOT,
    USES_QUICK_RUN,
    copy_run,
    job_counts,
    output_of,
    quick_run,
    result_files,
    rule_inventory,
    rule_source,
    snakemake,
)

#: Outputs under these folders are the paper's figures and tables: they go into the report.
REPORTED_FOLDERS = ("results/figures/", "results/tables/")
#: Table-like outputs whose provenance is checked (figures are images; their data is a CSV).
TABLE_SUFFIXES = (".csv", ".tsv", ".md", ".json", ".json.gz", ".tex", ".html")


def runnable_rules(*configfiles: str) -> dict[str, dict]:
    """Rules that run something (not the aggregating target rules such as `all`)."""
    return {name: info for name, info in rule_inventory(*configfiles).items() if info["runs"]}


# ------------------------------------------------------------------ configuration


def test_dry_run_plans_every_table_and_figure(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1")
    assert result.returncode == 0, output_of(result)
    counts = job_counts(result.stdout)
    n_sets = len(yaml.safe_load((ROOT / "config.yaml").read_text())["invariant_n_max"])
    assert counts["generate_invariants"] == n_sets
    assert counts["compare_invariants"] == n_sets
    assert counts["all"] == 1
    # every rule that writes a figure or a table is planned by the default target
    for name, info in runnable_rules().items():
        if any(o["path"].startswith(REPORTED_FOLDERS) for o in info["outputs"]):
            assert counts.get(name, 0) >= 1, f"rule {name} (a figure or table) is not planned"


#: rules that choose or train a potential: no test file may reach them, directly or not
CHOOSING_RULES = ("potential_train", "potential_cv", "potential_choice", "potential_selection",
                  "potential_train_tuned")


def test_no_test_file_reaches_a_selection_or_training_job(tmp_path):
    """Model selection is honest: in the job DAG of the full pipeline, no job that reads a
    test split (of the mlearn data or its fingerprints) is upstream of a job that selects or
    trains a potential; evaluation jobs do read it (so the check is not vacuous)."""
    result = snakemake(tmp_path, "--dag")
    assert result.returncode == 0, output_of(result)
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]*)"', result.stdout, flags=re.M))
    parents: dict[str, set[str]] = {}
    for source, target in re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, flags=re.M):
        parents.setdefault(target, set()).add(source)

    def upstream(node):
        seen, todo = set(), [node]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    reads_test = {n for n, label in labels.items() if "split: test" in label}
    choosing = [n for n, label in labels.items() if label.split("\\n")[0] in CHOOSING_RULES]
    assert reads_test and {labels[n].split("\\n")[0] for n in choosing} == set(CHOOSING_RULES)
    leaks = [f"{labels[n]!r} <- {labels[m]!r}" for n in choosing for m in upstream(n) & reads_test]
    assert not leaks, "test data upstream of selection/training:\n" + "\n".join(leaks)
    evaluating = [n for n, label in labels.items() if label.split("\\n")[0] == "potential_evaluate"]
    assert evaluating and all(upstream(n) & reads_test for n in evaluating)


def test_quick_config_is_valid_and_smaller(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", "--configfile", str(QUICK_CONFIG))
    assert result.returncode == 0, output_of(result)
    counts = job_counts(result.stdout)
    # both shipped orders are regenerated (their comparison is the exact-regeneration check of
    # the n_max = 10 set), but the quick run has fewer jobs in all than the default one
    assert counts["generate_invariants"] == 2
    default = job_counts(snakemake(tmp_path, "--dry-run", "--cores", "1").stdout)
    assert sum(counts.values()) < sum(default.values())


def _planned_paths(output: str) -> set[str]:
    """Every output, log and benchmark path of the jobs a dry run lists."""
    paths = set()
    for field in re.findall(r"^\s+(?:output|log|benchmark): (.*)$", output, flags=re.M):
        paths.update(p.strip() for p in field.split(", "))
    return paths


def test_quick_and_default_configurations_write_apart(tmp_path):
    """Every output, log and benchmark of the quick configuration lies under its results
    folder (downloads aside, in the shared resources/), and none of the default's does."""
    assert QUICK_RESULTS == "results/quick"
    quick = snakemake(tmp_path, "--dry-run", "--cores", "1", "--configfile", str(QUICK_CONFIG))
    default = snakemake(tmp_path, "--dry-run", "--cores", "1")
    assert quick.returncode == 0 and default.returncode == 0, output_of(quick) + output_of(default)
    quick_paths, default_paths = _planned_paths(quick.stdout), _planned_paths(default.stdout)
    assert len(quick_paths) > 100 and len(default_paths) > len(quick_paths)
    shared = {p for p in quick_paths if p.startswith("resources/mlearn/")}
    assert shared and quick_paths - shared == {
        p for p in quick_paths if p.startswith(QUICK_RESULTS + "/")}
    assert not [p for p in default_paths if p.startswith(QUICK_RESULTS + "/")]
    assert "results/tables/table1.csv" in default_paths  # the default's paths are unchanged


def _ni_record(energy: float) -> dict:
    """A one-atom mlearn record (pymatgen Structure layout)."""
    return {"structure": {"lattice": {"matrix": [[3.5, 0, 0], [0, 3.5, 0], [0, 0, 3.5]]},
                          "sites": [{"xyz": [0, 0, 0], "species": [{"element": "Ni"}]}]},
            "outputs": {"energy": energy, "forces": [[0.0, 0.0, 0.0]]}, "group": "Elastic"}


def test_a_replaced_mirror_file_is_fetched_again(tmp_path):
    """A mirror file's sha256 is a param of mlearn_data: replacing the file reruns the job."""
    import json

    mirrored = tmp_path / "mirror" / "Ni" / "training.json"
    mirrored.parent.mkdir(parents=True)
    mirrored.write_text(json.dumps([_ni_record(-5.0)]))
    overlay = tmp_path / "mirror.yaml"
    overlay.write_text(
        yaml.safe_dump({"potentials": {"data": {"mirror": str(mirrored.parents[1])}}}))
    workdir = tmp_path / "run"
    workdir.mkdir()
    args = ("resources/mlearn/Ni/training", "--cores", "1",
            "--configfile", str(QUICK_CONFIG), str(overlay))
    result = snakemake(workdir, *args)
    assert result.returncode == 0, output_of(result)
    manifest = json.loads((workdir / "resources/mlearn/Ni/training/manifest.json").read_text())
    assert manifest["available"] and manifest["source"] == "mirror"
    assert "Nothing to be done" in output_of(snakemake(workdir, "--dry-run", *args))
    mirrored.write_text(json.dumps([_ni_record(-5.0), _ni_record(-5.5)]))  # repaired, say
    plan = snakemake(workdir, "--dry-run", *args)
    assert job_counts(plan.stdout) == {"mlearn_data": 1}, output_of(plan)
    assert "Params have changed" in plan.stdout


def test_run_ends_with_a_summary_of_missing_data(tmp_path):
    """The quick configuration lacks Ni's training file (milad does not ship it, downloads
    are off): the run succeeds and its last lines name the file, why, and the smoke test."""
    result = snakemake(tmp_path, "mlearn_inventory", "--cores", "1",
                       "--configfile", str(QUICK_CONFIG))
    assert result.returncode == 0, output_of(result)
    summary = result.stdout[result.stdout.index("milad: results under results/quick/"):]
    assert "SMOKE TEST" in summary and "not a comparison with the paper" in summary
    assert ("Ni training data MISSING (resources/mlearn/Ni/training): mlearn "
            "Ni/training.json is unavailable: not shipped with milad; downloads are disabled"
            ) in summary
    assert "Si training" not in summary  # Si comes from the copy shipped with milad


@pytest.mark.parametrize(
    "option, key",
    [
        ("--configfile", "table1_lmax"),  # mistyped key in a config file
        ("--config", "completness_n_max"),  # mistyped key on the command line
    ],
)
def test_mistyped_config_key_is_rejected_by_name(tmp_path, option, key):
    if option == "--configfile":
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"{key}: 4\n")
        args = ("--configfile", str(bad))
    else:
        args = ("--config", f"{key}=7")
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", *args)
    assert result.returncode != 0
    output = output_of(result)
    assert "Error validating config file" in output
    assert f"'{key}' was unexpected" in output


def test_mistyped_nested_config_key_is_rejected_by_name(tmp_path):
    """Keys inside a nested section (here potentials.data) are checked as strictly."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    nested = [(k, sub) for k, v in config.items() if isinstance(v, dict)
              for sub, w in v.items() if isinstance(w, dict)]
    if not nested:
        pytest.skip("config.yaml has no nested sections")
    section, subsection = nested[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{section}:\n  {subsection}:\n    mistyped_key_xyz: 1\n")
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", "--configfile", str(bad))
    assert result.returncode != 0
    output = output_of(result)
    assert "Error validating config file" in output
    assert "'mistyped_key_xyz' was unexpected" in output


def test_wrong_config_type_is_rejected_by_name(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", "--config", "table1_l_max=seven")
    assert result.returncode != 0
    output = output_of(result)
    assert "Error validating config file" in output
    assert "instance['table1_l_max']" in output


def test_schema_is_strict_at_every_level():
    """No object of the schema accepts keys it does not list (mistyped nested keys too)."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    loose = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                if node.get("additionalProperties", True) is not False:
                    loose.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "")
    assert not loose, f"schema objects without additionalProperties: false: {loose}"
    documented = (ROOT / "config.yaml").read_text()
    for key in schema["properties"]:
        assert re.search(rf"^{key}:", documented, flags=re.M), f"config.yaml lacks {key}"


SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
#: Keywords of the schema that constrain no value themselves (they name, document or combine).
NON_CONSTRAINTS = {"$schema", "title", "description", "properties", "items", "$defs", "$ref",
                   "allOf"}
#: (constraint, path in config.yaml, bad value, what the error must name) - at least one case
#: per kind of constraint the schema uses. A path names the value replaced; ``DELETE`` removes
#: it. The error names the key by its path, "On instance[...]", or for a missing, unknown or
#: badly named key by the key itself.
DELETE = object()
BAD_CONFIGS = [
    ("minimum", ("table1_l_max",), 1, None),
    ("minimum", ("qm9", "rdkit_validation", "trials"), 0, None),
    ("maximum", ("table1_n_min",), 3, None),
    ("maximum", ("invariant_n_max",), [7, 17], "['invariant_n_max'][1]"),
    ("exclusiveMinimum", ("completeness_tolerance",), 0, None),
    ("exclusiveMinimum", ("qm9", "descriptor", "cutoff"), -1.0, None),
    ("exclusiveMaximum", ("potentials", "training", "validation_fraction"), 1, None),
    ("enum", ("qm9", "source"), "zenodo", None),
    ("enum", ("potentials", "elements"), ["Ni", "Fe"], "['potentials']['elements'][1]"),
    ("enum", ("potentials", "descriptor", "n_max"), 8, None),
    ("type", ("rank_seed",), "zero", None),
    ("type", ("smoke_test",), "yes", None),
    ("type", ("qm9", "molecules"), "all", None),
    ("type", ("potentials", "data", "max_structures"), 2.5, None),
    ("pattern", ("qm9", "descriptor", "species"), "h,c,n", None),
    ("pattern", ("qm9", "figshare", "md5"), "not-a-digest", None),
    ("pattern", ("qm9", "figshare", "url"), "ftp://example.org/qm9.tar.bz2", None),
    ("pattern", ("potentials", "data", "sha256"), {"Fe/training": "0" * 64}, "'Fe/training'"),
    ("additionalProperties", ("qm9", "decode", "max_iteration"), 10, "'max_iteration' was unexpected"),
    ("additionalProperties", ("qm9", "decode", "single", "hop"), 10, "'hop' was unexpected"),
    ("minimum", ("qm9", "decode", "single", "max_iterations"), 0, None),
    ("required", ("qm9", "seed"), DELETE, "'seed' is a required property"),
    ("minItems", ("qm9", "fig2", "orders"), [], None),
    ("maxItems", ("potentials", "selection", "ablation", "lever"), ["a", "b", "c"], None),
    ("uniqueItems", ("invariant_n_max",), [7, 7], None),
    ("minLength", ("results",), "", None),
]


def _replaced(config: dict, path: tuple, value) -> dict:
    import copy

    changed = copy.deepcopy(config)
    *parents, last = path
    node = changed
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize("constraint, path, value, named", BAD_CONFIGS,
                         ids=[f"{c}-{'.'.join(p)}" for c, p, _, _ in BAD_CONFIGS])
def test_config_breaking_a_schema_constraint_is_rejected_by_name(constraint, path, value, named):
    """config.yaml with one value broken, validated in-process as the Snakefile does."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    with pytest.raises(WorkflowError, match="Error validating config file") as error:
        validate(_replaced(config, path, value), str(SCHEMA))
    message = str(error.value)
    assert f"Failed validating {constraint!r}" in message, message
    if named is None:  # the broken value itself, by its path
        named = "".join(f"[{key!r}]" for key in path)
    assert named in message, message


def test_every_constraint_of_the_schema_has_a_rejection_case():
    """The cases above cover every kind of constraint the schema uses, and config.yaml and the
    quick configuration (over it) pass, so the rejections are down to the broken value."""
    from snakemake.utils import update_config, validate

    used = set()

    def walk(node, in_properties=False):
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_properties:
                    used.add(key)
                walk(value, in_properties=key in ("properties", "$defs") and not in_properties)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(SCHEMA.read_text()))
    tested = {constraint for constraint, *_ in BAD_CONFIGS}
    # propertyNames applies a pattern or an enum to keys (the sha256 case above)
    assert used - NON_CONSTRAINTS - {"propertyNames"} == tested
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(SCHEMA))
    update_config(config, yaml.safe_load(QUICK_CONFIG.read_text()))  # as --configfile merges
    validate(config, str(SCHEMA))


def test_lint_reports_nothing(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, output_of(result)
    assert "Congratulations, your workflow is in a good condition!" in output_of(result)


# ------------------------------------------------------------------ rules


def test_every_rule_declares_log_benchmark_threads_resources_and_env():
    """Every rule that runs something has log, benchmark, threads, mem_mb, runtime, a conda
    environment file from envs/ and constrained wildcards."""
    rules = runnable_rules()
    assert len(rules) >= 4
    problems = []
    for name, info in rules.items():
        if not info["log"]:
            problems.append(f"{name}: no log:")
        if not info["benchmark"]:
            problems.append(f"{name}: no benchmark:")
        for resource in ("mem_mb", "runtime"):
            if resource not in info["resources"]:
                problems.append(f"{name}: no resources: {resource}")
        if not re.search(r"^\s+threads:", rule_source(info), flags=re.M):
            problems.append(f"{name}: no threads:")
        conda = info["conda"]
        if not conda:
            problems.append(f"{name}: no conda:")
        else:
            env_file = (Path(info["snakefile"]).parent / conda).resolve()
            if env_file.parent != ROOT / "envs" or not env_file.exists():
                problems.append(f"{name}: conda env {conda} is not a file in envs/")
        # a constrained wildcard shows up as {name,regex} in the output patterns
        for wildcard in info["wildcards"]:
            for output in info["outputs"]:
                if "{" + wildcard + "}" in output["path"]:
                    problems.append(f"{name}: wildcard {wildcard} unconstrained in {output['path']}")
        # logs and benchmarks must tell the jobs of one rule apart
        for wildcard in info["wildcards"]:
            for path in info["log"] + [info["benchmark"] or ""]:
                if path and "{" + wildcard not in path:
                    problems.append(f"{name}: {path} does not contain wildcard {wildcard}")
    assert not problems, "\n".join(problems)


def test_every_figure_and_table_is_in_the_report_with_a_paper_caption():
    problems = []
    for name, info in runnable_rules().items():
        for output in info["outputs"]:
            if not output["path"].startswith(REPORTED_FOLDERS):
                continue
            if output["path"].endswith(".md"):
                continue  # the Markdown twin of a table, for reading on GitHub
            if not output["report"]:
                problems.append(f"{name}: {output['path']} is not marked report()")
                continue
            caption = Path(output["caption"] or "")
            if not caption.is_file():
                problems.append(f"{name}: {output['path']} has no caption file")
            elif caption.resolve().parent != ROOT / "workflow" / "report":
                problems.append(f"{name}: caption {caption} is not in workflow/report/")
            elif "paper" not in caption.read_text().lower():
                problems.append(f"{name}: caption {caption.name} does not say what the paper reported")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ a real run


@USES_QUICK_RUN
def test_quick_run_end_to_end():
    """The quick configuration runs every rule for real through Snakemake."""
    results = quick_run() / QUICK_RESULTS
    l_max = yaml.safe_load(QUICK_CONFIG.read_text())["table1_l_max"]
    columns = [str(l) for l in range(2, l_max + 1)]

    table = read_csv(results / "tables" / "table1.csv")
    assert list(table.columns) == ["quantity", "source"] + columns
    rows = table.set_index(["quantity", "source"])
    paper_algebraic = [3, 13, 28, 49, 77, 113][: len(columns)]
    assert rows.loc[("algebraically_independent", "milad")].tolist() == paper_algebraic
    assert rows.loc[("algebraically_independent", "paper")].tolist() == paper_algebraic
    assert rows.loc[("all", "paper")].tolist() == [4, 16, 49, 123, 280, 573][: len(columns)]
    header = (results / "tables" / "table1.csv").read_text()
    assert "# note 2" in header
    markdown = (results / "tables" / "table1.md").read_text()
    assert "## Notes" in markdown and "## Provenance" in markdown
    assert "<table" in (results / "tables" / "table1.html").read_text()

    # the invariants rule regenerates both shipped orders from scratch and finds them equal
    for n_max, count in ((7, 117), (10, 283)):
        path = results / "invariants" / f"zernike_nmax{n_max}.comparison.json"
        report = yaml.safe_load(path.read_text())
        assert report["status"] == "identical", path
        assert report["count"] == count

    # (the completeness figure and its CSVs are checked in
    # test_quick_run_completeness_figure_holds_the_pair_data)
    assert_figure_files(results / "figures" / "chirality.pdf", results / "figures" / "chirality.png")
    # the chirality target: one decode per fingerprint of the quick run's chiral molecule; a
    # successful decode of the chiral fingerprint is the original enantiomer
    chirality = read_csv(results / "tables" / "chirality.csv")
    assert sorted(chirality["fingerprint"]) == ["chiral", "default"]
    chiral = chirality[(chirality["fingerprint"] == "chiral") & chirality["success"]]
    assert (chiral["hand"] == "original").all() and (chiral["rmsd"] < 0.01).all()
    assert "## Chiral molecules" in (results / "tables" / "chirality.md").read_text()
    for name, info in runnable_rules(str(QUICK_CONFIG)).items():
        if info["wildcards"]:
            continue
        for path in info["log"] + [info["benchmark"]]:
            assert (quick_run() / path).exists(), f"{name}: {path} missing"


@USES_QUICK_RUN
def test_quick_run_completeness_figure_holds_the_pair_data():
    """Fig. 1 of the quick run: the CSV is the completeness table of the configured order and
    tolerance (recomputed here, where only nu = 4 invariants tell the pair apart, as in the
    paper), and the PDF and the PNG are one drawn page of the same size."""
    from milad.completeness import completeness_differences, mirror_pair_differences

    config = yaml.safe_load(QUICK_CONFIG.read_text())
    figures = quick_run() / QUICK_RESULTS / "figures"
    table = read_csv(figures / "fig_completeness.csv")
    expected = completeness_differences(config["completeness_n_max"],
                                        config["completeness_tolerance"])
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=0, atol=1e-14)
    assert set(table.loc[table["differs"], "degree"]) == {4}
    # the mirror-pair panel's data: only the parity-odd invariants tell B from its mirror image
    mirror = read_csv(figures / "fig_completeness_chiral.csv")
    expected = mirror_pair_differences(config["completeness_n_max"], config["completeness_tolerance"])
    pd.testing.assert_frame_equal(mirror, expected, check_exact=False, rtol=0, atol=1e-14)
    assert set(mirror.loc[mirror["differs"], "parity"]) == {"odd"}
    assert_figure_files(figures / "fig_completeness.pdf", figures / "fig_completeness.png")


@USES_QUICK_RUN
def test_every_table_records_version_commit_and_config():
    from milad import __version__
    from milad.provenance import REQUIRED_FIELDS, read_provenance

    workdir = quick_run()
    config = yaml.safe_load(QUICK_CONFIG.read_text())
    tables = [p for p in result_files(workdir) if p.endswith(TABLE_SUFFIXES)]
    assert len(tables) >= 5
    for relative in tables:
        record = read_provenance(workdir / relative)
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        assert not missing, f"{relative}: provenance lacks {missing}"
        assert record["milad_version"] == __version__, relative
        assert record["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
        for key, value in config.items():
            assert record["config"].get(key) == value, f"{relative}: config[{key}]"


@USES_QUICK_RUN
def test_report_holds_every_figure_and_table(tmp_path):
    workdir = copy_run(quick_run(), tmp_path / "run")
    result = snakemake(workdir, "--configfile", str(QUICK_CONFIG), "--report",
                       f"{QUICK_RESULTS}/report.html")
    assert result.returncode == 0, output_of(result)
    output = output_of(result)
    # docutils reports broken captions as "(ERROR/3)" or "(WARNING/2)" but carries on
    assert not re.search(r"\((ERROR|WARNING|SEVERE)/\d\)", output), output
    html = (workdir / QUICK_RESULTS / "report.html").read_text()
    reported = [o["path"] for info in runnable_rules(str(QUICK_CONFIG)).values()
                for o in info["outputs"] if o["report"]]
    produced = set(result_files(workdir))
    for path in reported:
        if path in produced:
            assert f"Adding {Path(path).name}" in output, f"{path} not added to the report"
            assert Path(path).name in html
    # the captions made it in, with the paper's numbers
    assert "21 of its 29" in html  # Fig. 1
    assert "573" in html and "486" in html  # Table I


# ------------------------------------------------------------------ profiles


def load_profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


@pytest.mark.parametrize("name, executor", [("local", "local"), ("slurm", "slurm")])
def test_profile_names_existing_rules_and_resources(name, executor):
    profile = load_profile(name)
    assert profile["executor"] == executor
    rules = rule_inventory()
    for section in ("set-resources", "set-threads"):
        for rule in profile.get(section) or {}:
            assert rule in rules, f"profiles/{name}: {section} names unknown rule {rule}"
    defaults = dict(item.split("=", 1) for item in profile["default-resources"])
    assert {"mem_mb", "runtime"} <= set(defaults)
    if executor == "slurm":
        # polling without an accounting database (see the profile and tests/test_slurm.py)
        assert profile["slurm-status-command"] == "squeue"
        assert profile["set-resources"], "the SLURM profile carries per-rule resources"


def test_local_profile_dry_run(tmp_path):
    result = snakemake(
        tmp_path, "--profile", str(PROFILES / "local"), "--configfile", str(QUICK_CONFIG),
        "--dry-run",
    )
    assert result.returncode == 0, output_of(result)
    counts = job_counts(result.stdout)
    # both shipped orders are regenerated (their comparison is the exact-regeneration check of
    # the n_max = 10 set), but the quick run has fewer jobs in all than the default one
    assert counts["generate_invariants"] == 2
    default = job_counts(snakemake(tmp_path, "--dry-run", "--cores", "1").stdout)
    assert sum(counts.values()) < sum(default.values())


# ------------------------------------------------------------------ provenance helpers


def test_provenance_record():
    from milad import __version__
    from milad.provenance import provenance, provenance_comment_lines

    record = provenance({"table1_l_max": 4}, rule="test")
    assert record["milad_version"] == __version__
    assert record["config"] == {"table1_l_max": 4}
    assert record["rule"] == "test"
    assert record["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    lines = provenance_comment_lines(record)
    assert lines[0].startswith("# milad_version: ")


def test_provenance_round_trip(tmp_path):
    import gzip
    import json

    from milad.provenance import (
        provenance,
        read_csv,
        read_provenance,
        with_provenance,
        write_csv,
        write_html_table,
    )

    record = provenance({"a": [1, 2]}, rule="demo")
    frame = pd.DataFrame({"x": [1.0, 2.5], "y": ["a", "C#N"]})  # a '#' inside the table stays
    write_csv(frame, tmp_path / "t.csv", record, comments=["a note: with a colon"])
    assert read_provenance(tmp_path / "t.csv") == json.loads(json.dumps(record))
    assert read_csv(tmp_path / "t.csv").equals(frame)
    (tmp_path / "t.json").write_text(json.dumps(with_provenance({"v": 1}, record)))
    assert read_provenance(tmp_path / "t.json")["config"] == {"a": [1, 2]}
    with gzip.open(tmp_path / "t.json.gz", "wt") as handle:
        json.dump({"metadata": {"provenance": record}}, handle)
    assert read_provenance(tmp_path / "t.json.gz")["rule"] == "demo"
    write_html_table(frame, tmp_path / "t.html", record, title="demo", notes=["<b>&"])
    assert read_provenance(tmp_path / "t.html") == json.loads(json.dumps(record))
    (tmp_path / "t.tex").write_text("% caption\n% milad_version: \"0.1.0\"\n\\begin{tabular}\n")
    assert read_provenance(tmp_path / "t.tex") == {"milad_version": "0.1.0"}
    (tmp_path / "none.csv").write_text("x\n1\n")
    assert read_provenance(tmp_path / "none.csv") == {}
