# Helpers shared by the rules (the Snakefile includes this file first, before the rules):
# the results folder, configured paths, report entries, descriptor settings, and the
# configuration of the QM9 and potentials parts.

import importlib.util
import os
import re


RESULTS = os.path.normpath(config["results"])


def results(path):
    """``path`` under the configured results folder (config key ``results``): every rule's
    outputs, logs and benchmarks go there, so that configurations do not collide."""
    return f"{RESULTS}/{path}"


def repo_path(path):
    """A configured path: relative ones are taken from the repository root; None stays None."""
    return None if path is None else os.path.normpath(os.path.join(workflow.basedir, path))


def captioned(path, caption, category, **labels):
    """``report()`` of one output, captioned from workflow/report/CAPTION."""
    return report(path, caption=f"../report/{caption}", category=category, labels=labels)


# ---------------------------------------------------------------------- QM9 decoding
QM9 = config["qm9"]
QM9_MODES = ["positions", "single", "two"]
QM9_VALIDATION_KINDS = ["positions", "species"]
QM9_SHIPPED = os.path.join(workflow.basedir, "milad", "data", "qm9_subset.extxyz")
QM9_SUBSET = results("qm9/subset.extxyz")
QM9_ARCHIVE = "resources/qm9/dsgdb9nsd.xyz.tar.bz2"
# the tidy table also as Parquet, only where pyarrow is installed (milad does not need it)
QM9_PARQUET = importlib.util.find_spec("pyarrow") is not None


def _qm9_shipped_sizes(path=QM9_SHIPPED):
    """{QM9 ID: number of atoms} of the shipped subset, in file order (by size), read from the
    extxyz frame headers so that planning the DAG imports nothing."""
    sizes = {}
    with open(path) as handle:
        while True:
            line = handle.readline()
            if not line.strip():
                return sizes
            n_atoms = int(line)
            match = re.search(r"\bqm9_id=(\d+)", handle.readline())
            if match is None:
                raise ValueError(f"{path}: a frame without qm9_id; not a milad QM9 subset file")
            sizes[int(match.group(1))] = n_atoms
            for _ in range(n_atoms):
                handle.readline()


QM9_SIZES = _qm9_shipped_sizes()


def subset_ids(molecules, key):
    """The configured QM9 IDs (config key ``key``, a list), or the whole subset for None; a
    ValueError naming the IDs the subset does not hold."""
    if molecules is None:
        return list(QM9_SIZES)
    ids = [int(i) for i in molecules]
    unknown = [i for i in ids if i not in QM9_SIZES]
    if unknown:
        raise ValueError(
            f"config {key}: QM9 IDs {unknown} are not in the paper's subset "
            f"(milad/data/qm9_subset.extxyz holds {sorted(QM9_SIZES)})"
        )
    return ids


QM9_IDS = subset_ids(QM9["molecules"], "qm9.molecules")
QM9_ATTEMPTS = list(range(1, int(QM9["attempts"]) + 1))


def _qm9_decodes(suffix, modes=QM9_MODES):
    return expand(
        results("qm9/decodes/{mode}/{qm9_id}_{attempt}.{suffix}"),
        mode=modes, qm9_id=QM9_IDS, attempt=QM9_ATTEMPTS, suffix=suffix,
    )


def _qm9_decode_input(wildcards):
    """The subset; in mode "two" also the positions decoded (mode "positions") in the same
    attempt for the same molecule."""
    inputs = {"subset": QM9_SUBSET}
    if wildcards.mode == "two":
        inputs["positions"] = (
            results(f"qm9/decodes/positions/{wildcards.qm9_id}_{wildcards.attempt}.extxyz")
        )
    return inputs


def _decode_effort(decode):
    """How many times the default effort (8 iterations, 100 hops) a decode block asks for."""
    return max(1.0, decode["max_iterations"] / 8) * max(1.0, decode["hops"] / 100)


def qm9_decode_effort(mode):
    """max_iterations and hops of one decode in ``mode``: qm9.decode's, with the mode's own
    block (e.g. qm9.decode.single) in their place where it has one."""
    effort = {key: QM9["decode"][key] for key in ("max_iterations", "hops")}
    effort.update(QM9["decode"].get(mode) or {})
    return effort


def _qm9_decode_minutes(wildcards):
    """Wall-time request of one decode (minutes): a 29-atom molecule takes one to a few
    minutes per attempt at the default effort, a failing one up to max_iterations rounds of
    hops; mode "two" only fits the species. Scaled by the configured effort."""
    n_atoms = QM9_SIZES[int(wildcards.qm9_id)]
    effort = _decode_effort(qm9_decode_effort(wildcards.mode))
    if wildcards.mode == "two":
        return int(5 + effort * n_atoms / 3)
    return int(5 + effort * 2 * n_atoms)


def _qm9_decode_mem_mb(wildcards):
    return 1000 + 20 * QM9_SIZES[int(wildcards.qm9_id)]


def _qm9_figure(name, ext, caption, figure):
    """One file of a figure (``ext``: pdf or png), in the report."""
    return captioned(results(f"figures/{name}.{ext}"), caption, "QM9 decoding",
                       figure=figure, format=ext.upper())


# ---------------------------------------------------------------------- enantiomers
CHIR = config["chirality"]
CHIR_FINGERPRINTS = ["chiral", "default"] if CHIR["compare_default"] else ["chiral"]
CHIR_ATTEMPTS = list(range(1, int(CHIR["attempts"]) + 1))
CHIR_IDS = subset_ids(CHIR["molecules"], "chirality.molecules")


def _chirality_decodes(wildcards=None, suffix="json"):
    """Every decode of the chiral molecules, known once the checkpoint chirality_molecules ran."""
    from milad.provenance import read_csv

    table = read_csv(checkpoints.chirality_molecules.get().output[0])
    ids = [int(i) for i in table.loc[table["chiral"].astype(bool), "qm9_id"]]
    return expand(results("chirality/decodes/{fingerprint}/{qm9_id}_{attempt}.{suffix}"),
                  fingerprint=CHIR_FINGERPRINTS, qm9_id=ids, attempt=CHIR_ATTEMPTS,
                  suffix=suffix)


def _chirality_minutes(wildcards):
    """Wall-time request of one decode (minutes), as a QM9 decode of that molecule."""
    return int(5 + _decode_effort(CHIR["decode"]) * 2 * QM9_SIZES[int(wildcards.qm9_id)])


# ---------------------------------------------------------------------- potentials
POT = config["potentials"]
POT_ELEMENTS = list(POT["elements"])
POT_SPLITS = ["training", "test"]


def mlearn_shipped(wildcards):
    """Whether milad ships this mlearn file (milad/data/mlearn/<El>/<split>.json.xz)."""
    from milad.data import mlearn_embedded_path

    return mlearn_embedded_path(wildcards.element, wildcards.split) is not None


def mlearn_mirror_sha256(wildcards):
    """sha256 of the mirror's copy of one mlearn file that milad does not ship; None without a
    mirror or that file."""
    from milad.data import sha256_of

    if POT["data"]["mirror"] is None or mlearn_shipped(wildcards):
        return None
    path = os.path.join(repo_path(POT["data"]["mirror"]), wildcards.element,
                        f"{wildcards.split}.json")
    return sha256_of(path) if os.path.isfile(path) else None


def _pot_training(element):
    """Training settings of one element: the shared block with the element's overrides."""
    return {**POT["training"], **POT["settings"][element].get("training", {})}


def pot_descriptor(wildcards):
    """Settings of one element's descriptor (``Descriptor.from_dict``): the shared
    ``potentials.descriptor`` block with the element's Table II cutoff."""
    return {**POT["descriptor"], "cutoff": POT["settings"][wildcards.element]["cutoff"]}


def pot_paper_settings(element):
    """Model and training settings of the paper-settings potential of one element
    (``milad.potential.train_model``): Table II's layers and alpha, the training block."""
    training = _pot_training(element)
    model = {"hidden": POT["settings"][element]["hidden"], "bias": training["bias"],
             "activation": "tanh", "scaling": "range", "ensemble": 1}
    training = {k: v for k, v in training.items() if k not in ("bias", "threads")}
    return {"model": model, "training": {**training, "alpha": POT["settings"][element]["alpha"]}}


# ---------------------------------------------------------------------- model selection
SEL = POT["selection"]
SEL_MODE = SEL[SEL["mode"]]
SEL_CONFIGURATIONS = list(SEL_MODE["configurations"])
SEL_FOLDS = list(range(int(SEL_MODE["folds"])))


def _check_selection():
    """Names that must resolve, caught when the workflow is parsed."""
    problems = []
    if SEL["baseline"] not in SEL_CONFIGURATIONS:
        problems.append(f"baseline {SEL['baseline']!r} is not among the {SEL['mode']} configurations")
    for name in SEL_CONFIGURATIONS:
        if name not in SEL["configurations"]:
            problems.append(f"configuration {name!r} is not defined under configurations")
        elif SEL["configurations"][name]["descriptor"] not in SEL["descriptors"]:
            problems.append(f"configuration {name!r} uses an undefined descriptor variant")
    for lever, pair in SEL["ablation"].items():
        problems += [f"ablation {lever!r}: configuration {c!r} is not defined"
                     for c in pair if c not in SEL["configurations"]]
    paper = SEL["descriptors"].get("paper")
    if paper != {**POT["descriptor"], "cutoff_scales": [1.0]}:
        problems.append("descriptor variant 'paper' must equal potentials.descriptor with "
                        "cutoff_scales [1.0] (it names the paper-settings fingerprints)")
    if problems:
        raise ValueError("config potentials.selection: " + "; ".join(problems))


_check_selection()


def pot_fingerprints(element, variant, split):
    """Fingerprint file of one descriptor variant; the paper's is that of the paper row."""
    if variant == "paper":
        return results(f"potentials/{element}/fingerprints_{split}.npz")
    return results(f"potentials/{element}/variants/{variant}/fingerprints_{split}.npz")


def pot_variant_descriptor(element, variant):
    """``Descriptor.from_dict`` settings of a descriptor variant for one element: one
    descriptor per cutoff scale (a stack when there are several)."""
    spec = SEL["descriptors"][variant]
    cutoff = POT["settings"][element]["cutoff"]
    parts = [{"n_max": spec["n_max"], "feature": spec["feature"], "sigma": spec.get("sigma"),
              "cutoff": round(cutoff * scale, 6)} for scale in spec["cutoff_scales"]]
    return parts[0] if len(parts) == 1 else {"stack": parts}


def pot_configuration(element, name, refit=False):
    """Everything one selection configuration means for one element: its descriptor variant
    and settings, and the model and training settings (the element's paper settings, the
    selection mode's overrides for CV fits, or with ``refit`` those for the refit of the
    chosen configuration on the whole training file, then the configuration's own)."""
    configuration = SEL["configurations"][name]
    paper = pot_paper_settings(element)
    budget = SEL_MODE["refit" if refit else "training"]
    training = {**paper["training"], **budget, **configuration.get("training", {})}
    if "alpha" in configuration:
        training["alpha"] = configuration["alpha"]
    return {
        "configuration": name,
        "variant": configuration["descriptor"],
        "descriptor": pot_variant_descriptor(element, configuration["descriptor"]),
        "model": {**paper["model"], **configuration.get("model", {})},
        "training": training,
    }


def pot_fit_minutes(element, configuration, refit=False):
    """Wall-time request (minutes) of one fit of a configuration (a CV fit, or with ``refit``
    the refit): every restart of every ensemble member may use its max_minutes, plus
    fingerprint loading and evaluation."""
    settings = pot_configuration(element, configuration, refit)
    fits = settings["training"]["restarts"] * settings["model"]["ensemble"]
    return int(fits * settings["training"]["max_minutes"]) + 15


def pot_cv_records(element=None):
    """Every fold record of the selection (of one element, or of all)."""
    return expand(results("potentials/{element}/selection/{configuration}/fold{fold}.json"),
                  element=[element] if element else POT_ELEMENTS,
                  configuration=SEL_CONFIGURATIONS, fold=SEL_FOLDS)


def pot_chosen(element):
    """The configuration chosen for ``element`` (once its potential_choice checkpoint ran),
    with the refit's training settings; the baseline where no configuration could be scored
    (no training data)."""
    import json

    path = checkpoints.potential_choice.get(element=element).output[0]
    with open(path) as handle:
        chosen = json.load(handle)["chosen"].get(element)
    return pot_configuration(element, chosen or SEL["baseline"], refit=True)


# ---------------------------------------------------------------------- end of the run
def run_summary():
    """The lines printed when a run ends (Snakefile onsuccess / onerror): where the results
    are, whether this was a smoke test, and every mlearn file that was missing and why."""
    from milad.data import missing_data_summary

    lines = [f"milad: results under {RESULTS}/"]
    if config["smoke_test"]:
        lines.append(
            f"SMOKE TEST (smoke_test: true): {len(QM9_IDS)} QM9 molecule(s), at most "
            f"{POT['data']['max_structures']} structures per mlearn file, short fits; it checks "
            "that every rule runs, it is not a comparison with the paper."
        )
    manifests = expand("resources/mlearn/{element}/{split}/manifest.json",
                       element=POT_ELEMENTS, split=POT_SPLITS)
    missing = missing_data_summary(manifests)
    if missing:
        lines += missing
    elif all(os.path.isfile(path) for path in manifests):
        lines.append("every mlearn file of this configuration was available")
    return lines
