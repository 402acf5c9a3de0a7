"""Feature functions: how atoms become a density ``f(x)`` (paper eq. 4 and 6).

* ``delta``: ``f(x) = sum_i w_i delta(x - r_i)``;
* ``gaussian``: normalised 3D Gaussians of width ``sigma_i`` and weight ``w_i``.

Weights can encode species through ``SpeciesMap`` and are scaled by Behler's cosine cutoff
(eq. 37) for atom-centred environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = ["FEATURES", "SpeciesMap", "cosine_cutoff", "check_finite"]

FEATURES = ("delta", "gaussian")


@dataclass(frozen=True)
class SpeciesMap:
    """Species spread over a weight range, one bin each, weight = bin centre.

    ``SpeciesMap(("H", "C", "N", "O", "F"), (1.0, 2.0))`` gives 1.1, 1.3, 1.5, 1.7, 1.9 as in
    the paper's reconstruction experiments.
    """

    species: tuple[str, ...]
    weight_range: tuple[float, float] = (1.0, 2.0)

    def __post_init__(self):
        species = tuple(str(s) for s in self.species)
        if not species:
            raise ValueError("SpeciesMap needs at least one species")
        if len(set(species)) != len(species):
            raise ValueError(f"species listed twice in {species}")
        low, high = (float(v) for v in self.weight_range)
        if not low < high:
            raise ValueError(f"weight range must be increasing, got {self.weight_range}")
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "weight_range", (low, high))

    @classmethod
    def parse(cls, text: str, weight_range: tuple[float, float] = (1.0, 2.0)) -> "SpeciesMap":
        """From a comma-separated list such as ``"H,C,O,N,F"``."""
        return cls(tuple(s.strip() for s in text.split(",") if s.strip()), weight_range)

    @property
    def bin_width(self) -> float:
        low, high = self.weight_range
        return (high - low) / len(self.species)

    @property
    def weights(self) -> np.ndarray:
        """Weight of every species, in the order of ``species``."""
        low = self.weight_range[0]
        return low + (np.arange(len(self.species)) + 0.5) * self.bin_width

    def weights_of(self, symbols: Iterable[str]) -> np.ndarray:
        """Weight of each symbol; unknown species raise ``KeyError`` naming them."""
        table = dict(zip(self.species, self.weights))
        symbols = list(symbols)
        unknown = sorted(set(symbols) - set(table))
        if unknown:
            raise KeyError(
                f"species {', '.join(unknown)} not in the species map {','.join(self.species)}"
            )
        return np.array([table[s] for s in symbols], dtype=float)

    def species_of(self, weights: Sequence[float]) -> list[str]:
        """Snap weights to the species whose bin contains them (ends clipped into range)."""
        weights = np.asarray(weights, dtype=float)
        check_finite(weights, "weights")
        low, high = self.weight_range
        if np.any(weights < low - self.bin_width) or np.any(weights > high + self.bin_width):
            raise ValueError(
                f"weights {weights[(weights < low) | (weights > high)]} lie outside the "
                f"species weight range [{low}, {high}]"
            )
        bins = np.clip(((weights - low) / self.bin_width).astype(int), 0, len(self.species) - 1)
        return [self.species[b] for b in bins]


def cosine_cutoff(distances: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Behler's cutoff ``f_c = (cos(pi r / r_c) + 1) / 2`` for r <= r_c (eq. 37) and df_c/dr."""
    r = np.asarray(distances, dtype=float)
    inside = r <= cutoff
    phase = np.pi * r / cutoff
    value = np.where(inside, 0.5 * (np.cos(phase) + 1.0), 0.0)
    derivative = np.where(inside, -0.5 * np.pi / cutoff * np.sin(phase), 0.0)
    return value, derivative


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if the array has NaN or infinite entries."""
    bad = ~np.isfinite(np.asarray(array, dtype=float))
    if bad.any():
        raise ValueError(f"{name} contain {int(bad.sum())} NaN or infinite value(s)")
