"""Snakemake script: compare a regenerated invariant set with the shipped one (rule
compare_invariants; rule compare_chiral_invariants for the parity-odd sets, ``params.chiral``).

Writes a JSON report. The rule fails (after writing the report into its log) when the sets
differ; an order without a shipped set is reported as "not shipped" and passes.
"""

import json

from milad_job import start_job

start_job(snakemake)  # noqa: F821

from milad.invariants import InvariantSet, shipped_invariant_path  # noqa: E402
from milad.io import atomic_write_text  # noqa: E402
from milad.provenance import provenance  # noqa: E402


def differences(generated: InvariantSet, shipped: InvariantSet, limit: int = 10) -> list[str]:
    """Human-readable differences: moments, count, then invariant by invariant (exact)."""
    out = []
    if generated.kind != shipped.kind or generated.max_order != shipped.max_order:
        out.append(f"kind/order {generated.kind}/{generated.max_order} != "
                   f"{shipped.kind}/{shipped.max_order}")
    if generated.moments.tolist() != shipped.moments.tolist():
        out.append("moment labels differ")
    if len(generated) != len(shipped):
        out.append(f"{len(generated)} invariants generated, {len(shipped)} shipped")
    for i, (a, b) in enumerate(zip(generated.invariants, shipped.invariants)):
        if a.label != b.label or a.degree != b.degree:
            out.append(f"invariant {i}: {a.label} (nu={a.degree}) != {b.label} (nu={b.degree})")
        elif (a.scale_squared != b.scale_squared or dict(a.terms) != dict(b.terms)
              or a.imaginary != b.imaginary):
            out.append(f"invariant {i} ({a.label}): coefficients differ")
        if len(out) >= limit:
            out.append("...")
            break
    return out


n_max = int(snakemake.wildcards.n_max)  # noqa: F821
chiral = bool(getattr(snakemake.params, "chiral", False))  # noqa: F821
generated = InvariantSet.load(snakemake.input.generated)  # noqa: F821
shipped_path = shipped_invariant_path(n_max, chiral=chiral)
report = {
    "n_max": n_max,
    **({"chiral": True} if chiral else {}),
    "generated": snakemake.input.generated,  # noqa: F821
    "count": len(generated),
    "counts_by_degree": {str(k): v for k, v in generated.counts_by_degree().items()},
    "shipped": shipped_path.name if shipped_path.exists() else None,
}
if shipped_path.exists():
    found = differences(generated, InvariantSet.load(shipped_path))
    report["status"] = "identical" if not found else "DIFFERENT"
    report["differences"] = found
else:
    report["status"] = "not shipped"
    report["differences"] = []
report["provenance"] = provenance(snakemake.config, rule=snakemake.rule)  # noqa: F821
print(json.dumps(report, indent=2))
if report["status"] == "DIFFERENT":
    raise RuntimeError(
        f"the regenerated n_max={n_max} {'chiral ' if chiral else ''}invariant set differs from the shipped "
        f"{shipped_path}: {report['differences']}"
    )
atomic_write_text(snakemake.output.report, json.dumps(report, indent=2) + "\n")  # noqa: F821
