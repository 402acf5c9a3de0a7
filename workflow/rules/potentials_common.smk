# Helpers of workflow/rules/potentials.smk: configuration access.

import os

POT = config["potentials"]
POT_ELEMENTS = list(POT["elements"])
POT_SPLITS = ["training", "test"]


def _pot_mirror():
    mirror = POT["data"]["mirror"]
    return None if mirror is None else os.path.normpath(os.path.join(workflow.basedir, mirror))


def _pot_training(element):
    """Training settings of one element: the shared block with the element's overrides."""
    return {**POT["training"], **POT["settings"][element].get("training", {})}


def _pot_report(path, caption, category, **labels):
    """``report()`` of one potentials output, captioned from workflow/report/."""
    return report(path, caption=f"../report/{caption}", category=category, labels=labels)
