"""The network: a plain PyTorch ``nn.Module`` that knows nothing about training.

Following Lightning's own style, the network is kept apart from the "system"
(``system.Classifier``) that trains it: swap ``MLP`` for another
``nn.Module`` (a CNN, say) and the training code stays as it is.
"""

from __future__ import annotations

from torch import Tensor, nn
from typing_extensions import override


class MLP(nn.Module):
    """A multilayer perceptron: flatten, one hidden ReLU layer, class scores."""

    def __init__(
        self, in_features: int, hidden_size: int, num_classes: int, dropout: float = 0.0
    ) -> None:
        """Build the layers.

        Args:
            in_features: Inputs per sample once flattened (64 for 8x8 images).
            hidden_size: Units in the hidden layer.
            num_classes: Output scores (logits) per sample.
            dropout: Probability of zeroing a hidden unit while training.
        """
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) of shape ``(batch, num_classes)``."""
        logits: Tensor = self.layers(x)
        return logits
