"""Activation functions of the element networks, each registered with its derivative.

Forces need d eps / d Phi of every atom. The network writes this gradient out by the chain
rule in its forward pass (cheaper than double back-propagation when training on forces), and
the chain rule needs the derivative of the activation at every hidden layer. Each activation a
network may use is therefore registered here once, as the pair (f, f'); the network calls
:class:`Activation` for both, so adding an activation is one entry in :data:`ACTIVATIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["ACTIVATIONS", "Activation", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """An element-wise activation y = f(x) and its derivative.

    ``derivative(x, y)`` receives both the input x and the output y = f(x), so that it can use
    whichever is cheaper (tanh' = 1 - y^2).
    """

    name: str
    function: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(x) and f'(x), element-wise, both of the shape of x."""
        y = self.function(x)
        return y, self.derivative(x, y)


def _tanh_derivative(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1 - y * y


#: The activations by name (module-level functions, so that networks pickle).
ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", torch.tanh, _tanh_derivative),
}


def get_activation(name: str) -> Activation:
    """The registered activation ``name``."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None
