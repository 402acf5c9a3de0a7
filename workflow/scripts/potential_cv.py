"""Snakemake script (rule potential_cv): one cross-validation fold of one configuration.

The model is fitted on the other folds of the element's TRAINING file exactly as the final
potential would be (milad.potential.train_model) and scored on the held-out fold. The test
file is not an input of this rule.
"""

import json

from milad_job import start_job

start_job(snakemake, torch_threads=True)  # noqa: F821

from milad.io import atomic_write_text  # noqa: E402
from milad.potential import FingerprintSet, cross_validation_fold, unavailable_reason  # noqa: E402
from milad.provenance import provenance, with_provenance  # noqa: E402

wildcards = snakemake.wildcards  # noqa: F821
settings = dict(snakemake.params.settings)  # noqa: F821
fold, folds = int(wildcards.fold), int(snakemake.params.folds)  # noqa: F821
record = {
    "element": wildcards.element, "configuration": wildcards.configuration, "fold": fold,
    "n_folds": folds, "settings": settings,
}
reason = unavailable_reason(snakemake.input[0])  # noqa: F821
if reason is not None:
    print(f"NO CROSS-VALIDATION for {wildcards.element}: {reason}")
    record.update(available=False, reason=reason)
else:
    data = FingerprintSet.load(snakemake.input[0])  # noqa: F821
    print(f"{wildcards.element}, {wildcards.configuration}, fold {fold + 1} of {folds}: "
          f"{len(data)} training structures, {data.n_features} invariants")
    result = cross_validation_fold(data, fold, folds, int(snakemake.params.seed),  # noqa: F821
                                   settings["model"], settings["training"], log=print)
    record.update(available=True, reason=None, **result)
    print(json.dumps({k: result[k] for k in ("held_out", "seconds")}, indent=1))
record = with_provenance(record, provenance(snakemake.config, rule=snakemake.rule,  # noqa: F821
                                            element=wildcards.element,
                                            configuration=wildcards.configuration, fold=fold))
atomic_write_text(snakemake.output[0], json.dumps(record, indent=1, default=float) + "\n")  # noqa: F821
