"""Training: the loss of eq. 38, the optimisation loop behind :meth:`Potential.fit`, restarts.

Training minimises eq. 38, averaged rather than summed over the M structures so that its scale
does not depend on the batch size:

    L = 1/(2M) sum_k [ e_k + alpha / (3 N_k) sum_i,j (F_ij - F'_ij)^2 ],

with the energy term e_k = ((E_k - E'_k) / N_k)^2 (``energy_term="per_atom"``: the energy
error per atom, the issue's reading and that of the AMP library the paper used, whose
customary force coefficient 0.04 is the paper's alpha) or e_k = (E_k - E'_k)^2 / N_k
(``energy_term="eq38"``: eq. 38 as printed, energies weighted N_k times more); energies in eV,
forces in eV/A. Optimisers: full-batch L-BFGS (the paper used BFGS) and mini-batch Adam; early
stopping watches the loss on a validation split carved out of the *training* data only
(:func:`~milad.potential.dataset.validation_split`), and :func:`train_best_of` keeps the best
of several seeds by that same validation loss.

:func:`train_model` is the one way a potential (or an :class:`~milad.potential.ensemble.Ensemble`)
is trained from settings; :func:`set_metrics` scores a model on a set, and
:func:`cross_validation_fold` trains on all folds but one of a training set and scores the
held-out one (:func:`~milad.potential.dataset.kfold_split`), for choosing settings on training
data only.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .dataset import FingerprintSet, TensorSet, kfold_split, validation_split
from .ensemble import Ensemble
from .model import Potential

__all__ = ["MODEL_SETTINGS", "TRAINING_SETTINGS", "cross_validation_fold", "largest_error_share",
           "loss_and_metrics", "set_metrics", "train", "train_best_of", "train_model"]

#: the ``model`` settings of :func:`train_model` and their defaults (the paper's model)
MODEL_SETTINGS: dict[str, Any] = {"hidden": [32, 32], "bias": False, "activation": "tanh",
                                  "scaling": "range", "ensemble": 1}
#: the ``training`` settings of :func:`train_model`, all required (config.yaml
#: ``potentials.training`` without ``bias`` and ``threads``, plus ``alpha``)
TRAINING_SETTINGS = ("alpha", "optimizer", "energy_term", "weight_decay", "restarts",
                     "validation_fraction", "seed", "max_epochs", "patience", "max_minutes",
                     "lbfgs_iterations", "learning_rate", "batch_size")
#: ensemble member m trains from seed ``seed + MEMBER_SEED_STRIDE * m``
MEMBER_SEED_STRIDE = 1000
#: the stop reason of a fit that ran out of its ``max_minutes`` starts with this
TIME_LIMIT_REASON = "time limit"


def loss_and_metrics(potential: Potential, data: TensorSet | FingerprintSet, alpha: float,
                     energy_term: str = "per_atom") -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of eq. 38 (mean over structures) and energy/force RMSEs.

    energy_term: ``"per_atom"``: ((E - E') / N)^2, the energy error per atom (the issue's and
    AMP's reading); ``"eq38"``: (E - E')^2 / N as eq. 38 is printed, which weights the
    energies N times more. The force term is alpha / (3 N) sum (F - F')^2 in both.

    Metrics: ``energy_rmse`` (eV/atom, over structures of (E - E')/N) and ``force_rmse``
    (eV/A, over all force components), as in Zuo et al. and the paper's Table III.
    """
    if isinstance(data, FingerprintSet):
        data = TensorSet(data)
    energies, forces, _ = potential._predict(data, forces=True)
    energy_error = (energies - data.energy) / data.n_atoms
    force_squares = ((forces - data.forces) ** 2).sum(1)
    per_structure = torch.zeros(data.n_structures, dtype=force_squares.dtype).index_add(
        0, data.structure, force_squares
    )
    if energy_term == "per_atom":
        energy_part = energy_error**2
    elif energy_term == "eq38":
        energy_part = energy_error**2 * data.n_atoms
    else:
        raise ValueError(f"unknown energy_term {energy_term!r}; choose 'per_atom' or 'eq38'")
    loss = 0.5 * torch.mean(energy_part + alpha / (3 * data.n_atoms) * per_structure)
    with torch.no_grad():
        metrics = {
            "energy_rmse": float(torch.sqrt(torch.mean(energy_error**2))),
            "force_rmse": float(torch.sqrt(force_squares.sum() / (3 * data.n_atoms_total))),
        }
    return loss, metrics


def train(
    potential: Potential,
    training: FingerprintSet,
    validation: FingerprintSet | None,
    *,
    alpha: float,
    energy_term: str,
    weight_decay: float,
    optimizer: str,
    max_epochs: int,
    patience: int,
    learning_rate: float | None,
    batch_size: int,
    lbfgs_iterations: int,
    lbfgs_history: int,
    max_seconds: float | None,
    seed: int,
    log: Callable[[str], None] | None,
    log_every: int,
) -> dict[str, list]:
    """The training loop of :meth:`Potential.fit`, which documents the settings and defaults."""
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'lbfgs' or 'adam'")
    potential._check_elements(training.elements)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_t = TensorSet(training)
    valid_t = TensorSet(validation) if validation is not None and len(validation) else None
    parameters = [p for p in potential.parameters() if p.requires_grad]
    history: dict[str, list] = {k: [] for k in (
        "epoch", "seconds", "evaluations", "learning_rate", "train_loss",
        "train_energy_rmse", "train_force_rmse", "validation_loss",
        "validation_energy_rmse", "validation_force_rmse")}
    evaluations = 0

    def penalty():
        if not weight_decay:
            return 0.0
        return 0.5 * weight_decay * sum((p * p).sum() for p in parameters)

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            parameters, lr=learning_rate or 1.0, max_iter=lbfgs_iterations,
            history_size=lbfgs_history, line_search_fn="strong_wolfe",
            tolerance_grad=1e-12, tolerance_change=1e-15,
        )
        scheduler = None

        def closure():
            nonlocal evaluations
            evaluations += 1
            opt.zero_grad()
            loss, _ = loss_and_metrics(potential, train_t, alpha, energy_term)
            loss = loss + penalty()
            loss.backward()
            return loss
    else:
        opt = torch.optim.Adam(parameters, lr=learning_rate or 1e-3)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(patience // 4, 1)
        )

    start = time.perf_counter()
    best = (math.inf, None, -1)
    previous_loss = None
    stalled = 0
    for epoch in range(1, max_epochs + 1):
        if optimizer == "lbfgs":
            opt.step(closure)
        else:
            order = rng.permutation(len(training))
            for first in range(0, len(order), batch_size):
                batch = train_t.batch(np.sort(order[first:first + batch_size]))
                opt.zero_grad()
                loss, _ = loss_and_metrics(potential, batch, alpha, energy_term)
                (loss + penalty()).backward()
                opt.step()
                evaluations += 1
        with torch.no_grad():
            train_loss, train_metrics = loss_and_metrics(potential, train_t, alpha, energy_term)
            if valid_t is not None:
                valid_loss, valid_metrics = loss_and_metrics(potential, valid_t, alpha,
                                                             energy_term)
            else:
                valid_loss, valid_metrics = train_loss, {"energy_rmse": math.nan,
                                                         "force_rmse": math.nan}
        train_loss, valid_loss = float(train_loss), float(valid_loss)
        for key, value in (
            ("epoch", epoch), ("seconds", time.perf_counter() - start),
            ("evaluations", evaluations), ("learning_rate", opt.param_groups[0]["lr"]),
            ("train_loss", train_loss),
            ("train_energy_rmse", train_metrics["energy_rmse"]),
            ("train_force_rmse", train_metrics["force_rmse"]),
            ("validation_loss", valid_loss if valid_t is not None else math.nan),
            ("validation_energy_rmse", valid_metrics["energy_rmse"]),
            ("validation_force_rmse", valid_metrics["force_rmse"]),
        ):
            history[key].append(value)
        if not math.isfinite(train_loss):
            reason = "the loss is not finite"
            if log:
                log(f"epoch {epoch}: loss is not finite; stopping")
            break
        if valid_loss < best[0]:
            best = (valid_loss,
                    {k: v.detach().clone() for k, v in potential.state_dict().items()}, epoch)
        if scheduler is not None:
            scheduler.step(valid_loss)
        if log and (epoch % log_every == 0 or epoch == 1):
            log(
                f"epoch {epoch:5d} {history['seconds'][-1]:8.1f} s  evals {evaluations:6d}  "
                f"loss {train_loss:.4e} / {valid_loss:.4e}  "
                f"E {1000 * train_metrics['energy_rmse']:.2f} / "
                f"{1000 * valid_metrics['energy_rmse']:.2f} meV/atom  "
                f"F {train_metrics['force_rmse']:.4f} / {valid_metrics['force_rmse']:.4f} eV/A"
            )
        reason = None
        if epoch - best[2] >= patience:
            reason = f"no validation improvement for {patience} epochs"
        elif max_seconds is not None and time.perf_counter() - start > max_seconds:
            reason = f"{TIME_LIMIT_REASON} of {max_seconds:.0f} s reached"
        elif optimizer == "lbfgs":
            stalled = stalled + 1 if previous_loss is not None and abs(
                previous_loss - train_loss) <= 1e-12 * abs(train_loss) else 0
            if stalled >= 3:
                reason = "training loss no longer changes"
        previous_loss = train_loss
        if reason:
            break
    else:
        reason = f"max_epochs = {max_epochs} reached"
    if best[1] is not None:
        potential.load_state_dict(best[1])
    history["best_epoch"] = [best[2]]
    history["stop_reason"] = [reason]
    if log:
        log(f"stopped after epoch {epoch} ({reason}); best epoch {best[2]}")
    potential.history = history
    potential.metadata.setdefault("training", {}).update({
        "optimizer": optimizer, "alpha": alpha, "energy_term": energy_term,
        "weight_decay": weight_decay,
        "max_epochs": max_epochs,
        "patience": patience, "learning_rate": opt.param_groups[0]["lr"] if optimizer ==
        "adam" else (learning_rate or 1.0), "batch_size": batch_size if optimizer == "adam"
        else None, "lbfgs_iterations": lbfgs_iterations, "seed": seed,
        "n_fit_structures": len(training),
        "n_validation_structures": 0 if validation is None else len(validation),
        "seconds": history["seconds"][-1] if history["seconds"] else 0.0,
        "epochs": epoch, "best_epoch": best[2], "stop_reason": reason,
    })
    return history


def train_best_of(
    fit: FingerprintSet,
    validation: FingerprintSet | None,
    restarts: int = 1,
    hidden: Sequence[int] = (32, 32),
    bias: bool = False,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    activation: str = "tanh",
    scaling: str = "range",
    **options,
) -> Potential:
    """Train ``restarts`` potentials (seeds ``seed``, ``seed + 1``, ...) and keep the one with
    the lowest validation loss (training loss without a validation set).

    ``options`` go to :meth:`Potential.fit`. The kept potential's metadata lists every
    restart's seed, best validation loss and training time under ``"restarts"``.
    """
    best, records = None, []
    for restart in range(int(restarts)):
        run_seed = int(seed) + restart
        if log and restarts > 1:
            log(f"restart {restart + 1} of {restarts} (seed {run_seed})")
        potential = Potential.for_data(fit, hidden=hidden, bias=bias, seed=run_seed,
                                       activation=activation, scaling=scaling)
        history = potential.fit(fit, validation, seed=run_seed, log=log, **options)
        key = "validation_loss" if validation is not None and len(validation) else "train_loss"
        score = float(history[key][history["best_epoch"][0] - 1])
        records.append({"seed": run_seed, "score": score, "score_of": key,
                        "best_epoch": history["best_epoch"][0],
                        "stop_reason": history["stop_reason"][0],
                        "seconds": history["seconds"][-1] if history["seconds"] else 0.0})
        if best is None or score < best[0]:
            best = (score, potential)
    potential = best[1]
    potential.metadata["restarts"] = records
    if log and restarts > 1:
        log(f"kept seed {potential.metadata['training']['seed']} (lowest {records[0]['score_of']})")
    return potential


def _reject_unknown(given: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    """A ValueError naming the keys of ``given`` not in ``known``."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(known)}")


def train_model(data: FingerprintSet, model: Mapping[str, Any], training: Mapping[str, Any],
                log: Callable[[str], None] | None = None) -> Potential | Ensemble:
    """Train the potential that the settings ``model`` and ``training`` describe on ``data``.

    ``model``: ``hidden`` layer widths, ``bias``, ``activation``, input ``scaling`` ("range"
    or "standard") and ``ensemble`` (number of members); missing keys take
    :data:`MODEL_SETTINGS`. ``training``: every key of :data:`TRAINING_SETTINGS` (meanings in
    config.yaml ``potentials.training``; ``max_minutes`` caps each fit, i.e. each restart of
    each member). Unknown or missing keys raise a ValueError.

    A validation split, ``validation_split(data.groups, validation_fraction, seed)``, is
    carved from ``data`` for early stopping and the choice among restarts. With
    ``ensemble == 1`` the result is :func:`train_best_of` over ``restarts`` seeds from
    ``seed``; with n > 1 an :class:`Ensemble` of n such potentials, member m from seed
    ``seed + 1000 m``. The model's metadata records the settings (``model``, ``settings``,
    ``alpha``, ``hidden``), ``fit_indices`` and ``validation_indices`` (into ``data``),
    ``wall_seconds``, ``stop_reasons`` (one per fit: every restart of every member) and
    ``fits_time_limited`` (how many of them the ``max_minutes`` cap stopped).
    """
    _reject_unknown(model, list(MODEL_SETTINGS), "model")
    _reject_unknown(training, TRAINING_SETTINGS, "training")
    missing = [k for k in TRAINING_SETTINGS if k not in training]
    if missing:
        raise ValueError(f"missing training setting(s) {', '.join(missing)}")
    model = {**MODEL_SETTINGS, **model}
    n_members = model["ensemble"]
    if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 1:
        raise ValueError(f"ensemble must be a number of members >= 1, got {n_members!r}")
    seed = int(training["seed"])
    fit_index, validation_index = validation_split(
        data.groups, float(training["validation_fraction"]), seed)
    fit, validation = data.split(fit_index, validation_index)
    learning_rate = training["learning_rate"]
    options = dict(
        restarts=int(training["restarts"]),
        hidden=[int(h) for h in model["hidden"]],
        bias=bool(model["bias"]),
        activation=str(model["activation"]),
        scaling=str(model["scaling"]),
        alpha=float(training["alpha"]),
        optimizer=str(training["optimizer"]),
        energy_term=str(training["energy_term"]),
        weight_decay=float(training["weight_decay"]),
        max_epochs=int(training["max_epochs"]),
        patience=int(training["patience"]),
        learning_rate=None if learning_rate is None else float(learning_rate),
        batch_size=int(training["batch_size"]),
        lbfgs_iterations=int(training["lbfgs_iterations"]),
        max_seconds=60 * float(training["max_minutes"]),
        log=log,
    )
    start = time.perf_counter()
    seeds = [seed + MEMBER_SEED_STRIDE * m for m in range(int(n_members))]
    members = []
    for m, member_seed in enumerate(seeds):
        if log and n_members > 1:
            log(f"ensemble member {m + 1} of {n_members} (seed {member_seed})")
        members.append(train_best_of(fit, validation, seed=member_seed, **options))
    trained = members[0] if n_members == 1 else Ensemble(members)
    stop_reasons = [str(run["stop_reason"]) for member in members
                    for run in member.metadata["restarts"]]
    trained.metadata.update(
        model={**model, "hidden": options["hidden"]},
        settings=dict(training),
        alpha=options["alpha"],
        hidden=options["hidden"],
        fit_indices=fit_index.tolist(),
        validation_indices=validation_index.tolist(),
        wall_seconds=time.perf_counter() - start,
        stop_reasons=stop_reasons,
        fits_time_limited=sum(r.startswith(TIME_LIMIT_REASON) for r in stop_reasons),
    )
    if n_members > 1:
        trained.metadata["member_seeds"] = seeds
    return trained


def set_metrics(model: Potential | Ensemble, data: FingerprintSet,
                return_predictions: bool = False,
                ) -> dict[str, Any] | tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Errors of ``model`` on the labelled set ``data``.

    ``n_structures``, ``n_atoms``; ``energy_rmse_meV_per_atom`` and ``energy_mae_meV_per_atom``
    over structures of (E - E') / N; ``force_rmse_eV_per_A`` and ``force_mae_eV_per_A`` over
    all force components; ``atoms_extrapolating`` and ``structures_extrapolating``: atoms whose
    fingerprint leaves the training range and the structures holding one. With
    ``return_predictions`` also the model's :meth:`predict_set` output.
    """
    if len(data) == 0:
        raise ValueError("no structures to score")
    predicted = model.predict_set(data)
    per_atom_error = (predicted["energy"] - data.energy) / data.n_atoms
    force_error = predicted["forces"] - data.forces
    excess = model.extrapolation(data.values, data.species, data.elements)
    metrics = {
        "n_structures": len(data),
        "n_atoms": int(len(data.values)),
        "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean(per_atom_error**2))),
        "energy_mae_meV_per_atom": 1000 * float(np.mean(np.abs(per_atom_error))),
        "force_rmse_eV_per_A": float(np.sqrt(np.mean(force_error**2))),
        "force_mae_eV_per_A": float(np.mean(np.abs(force_error))),
        "atoms_extrapolating": int((excess > 0).sum()),
        "structures_extrapolating": int(len(np.unique(data.structure[excess > 0]))),
    }
    return (metrics, predicted) if return_predictions else metrics


def largest_error_share(n_atoms: np.ndarray, energy_error: np.ndarray,
                        force_error: np.ndarray) -> dict[str, dict[str, float]]:
    """How much of a set's RMSEs one structure makes: an RMSE over a few dozen structures can be
    mostly one outlier, which the RMSE alone does not show.

    n_atoms (M,) atoms per structure; energy_error (M,) predicted minus reference energy per
    atom (eV/atom); force_error (sum(n_atoms), 3) predicted minus reference forces (eV/A), the
    atoms in structure order. Returns ``energy`` and ``force``, each with ``index`` (the
    structure with the largest sum of squared errors), ``share`` (its fraction of the set's
    sum), ``error`` (its own energy error in meV/atom, or its force RMSE in eV/A) and
    ``rmse_others`` (the RMSE of the other structures, NaN for a single structure).
    """
    n_atoms = np.asarray(n_atoms, dtype=int)
    energy_error = np.asarray(energy_error, dtype=float)
    force_error = np.asarray(force_error, dtype=float).reshape(-1, 3)
    if len(n_atoms) == 0 or len(energy_error) != len(n_atoms) or len(force_error) != n_atoms.sum():
        raise ValueError(f"{len(energy_error)} energy errors and {len(force_error)} atoms' force "
                         f"errors do not match {len(n_atoms)} structures of {n_atoms.sum()} atoms")
    energy = _dominant(energy_error**2, np.ones(len(n_atoms)))
    # in meV/atom; the structure's own error keeps its sign
    energy["error"] = 1000.0 * float(energy_error[energy["index"]])
    energy["rmse_others"] *= 1000.0
    starts = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
    force = _dominant(np.add.reduceat((force_error**2).sum(axis=1), starts), 3 * n_atoms)
    return {"energy": energy, "force": force}


def _dominant(squares: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """The structure with the largest sum of squared errors ``squares`` (M,) over its ``counts``
    (M,) error components: ``index``, ``share`` of all the squares, its own RMS ``error`` and
    the RMSE of the others (NaN when there are none)."""
    i = int(np.argmax(squares))
    total = squares.sum()
    rest = counts.sum() - counts[i]
    return {"index": i, "share": float(squares[i] / total) if total > 0 else 0.0,
            "error": float(np.sqrt(squares[i] / counts[i])),
            "rmse_others": float(np.sqrt((total - squares[i]) / rest)) if rest > 0 else math.nan}


def cross_validation_fold(data: FingerprintSet, fold: int, n_folds: int, seed: int,
                          model: Mapping[str, Any], training: Mapping[str, Any],
                          log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train with :func:`train_model` on all folds of ``data`` but ``fold`` and score both.

    Folds: ``kfold_split(data.groups, n_folds, seed)``; the early-stopping split is carved
    from the training folds only. Returns ``fold``, ``n_folds``, ``held_out`` and ``fit``
    (:func:`set_metrics` on the held-out fold and on the structures the weights were fitted
    to), ``seconds`` (training wall time), ``n_parameters``, ``stop_reasons`` and
    ``fits_time_limited`` (:func:`train_model`'s, so that a fit cut short by the wall-time cap,
    whose result depends on the machine's load, is visible).
    """
    folds = kfold_split(data.groups, n_folds, seed)
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not (
            0 <= fold < n_folds):
        raise ValueError(f"fold must be an integer in [0, {n_folds}), got {fold!r}")
    training_part, held_out = data.split(*folds[fold])
    trained = train_model(training_part, model, training, log)
    return {
        "fold": int(fold),
        "n_folds": int(n_folds),
        "held_out": set_metrics(trained, held_out),
        "fit": set_metrics(trained, training_part.subset(trained.metadata["fit_indices"])),
        "seconds": trained.metadata["wall_seconds"],
        "n_parameters": trained.n_parameters(),
        "stop_reasons": trained.metadata["stop_reasons"],
        "fits_time_limited": trained.metadata["fits_time_limited"],
    }
