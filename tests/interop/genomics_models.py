"""Genomics models from tangermeme's issue reports, written in plain PyTorch, scaled down for tests.

- ``issue48``: tangermeme issue #48 (Conv1d -> MaxPool1d -> Conv1d -> MaxPool1d -> Flatten ->
  Linear, no activation functions, no biases in the convolutions).
- ``issue49``: tangermeme issue #49 (Conv1d -> ReLU -> MaxPool1d(4, 2), overlapping windows ->
  Dropout -> Conv1d -> ReLU -> MaxPool1d(10, 5) -> Dropout -> Flatten -> Linear -> ReLU -> Linear).
- ``residual``: Conv1d -> ReLU -> (Conv1d + skip) -> ReLU -> MaxPool1d -> Flatten -> Linear.
- ``functional``: the #49 trunk with ``F.relu`` in ``forward`` instead of ``nn.ReLU`` modules
  (tangermeme issue #13: it sees no module to hook).
- ``twin``: tangermeme issue #43, f(x) - f(y) with one shared trunk.

``build(name, length, seed)`` returns the model in float64 and eval mode (its Dropout inactive).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def issue48(length: int) -> nn.Module:
    out = ((length // 15) // 5) * 6
    return nn.Sequential(nn.Conv1d(4, 6, 15, padding=7, bias=False), nn.MaxPool1d(15, 15),
                         nn.Conv1d(6, 6, 5, padding=2, bias=False), nn.MaxPool1d(5, 5), nn.Flatten(),
                         nn.Linear(out, 1))


def _issue49_length(length: int) -> int:
    a = (length - 6 - 4) // 2 + 1
    return ((a - 4) - 10) // 5 + 1


class Issue49(nn.Module):
    def __init__(self, length: int, tasks: int = 2):
        super().__init__()
        self.c1, self.rl1, self.mp1, self.dr1 = nn.Conv1d(4, 8, 7), nn.ReLU(), nn.MaxPool1d(4, 2), nn.Dropout(0.25)
        self.c2, self.rl2, self.mp2, self.dr2 = nn.Conv1d(8, 8, 5), nn.ReLU(), nn.MaxPool1d(10, 5), nn.Dropout(0.25)
        self.f2 = nn.Flatten()
        self.d3, self.rl3, self.d4 = nn.Linear(8 * _issue49_length(length), 16), nn.ReLU(), nn.Linear(16, tasks)

    def forward(self, x):
        x = self.dr1(self.mp1(self.rl1(self.c1(x))))
        x = self.f2(self.dr2(self.mp2(self.rl2(self.c2(x)))))
        return self.d4(self.rl3(self.d3(x)))


class Functional49(Issue49):
    def forward(self, x):
        x = self.mp1(F.relu(self.c1(x)))
        x = self.f2(self.mp2(F.relu(self.c2(x))))
        return self.d4(F.relu(self.d3(x)))


class SmallPool(nn.Module):
    """The #49 shape at a small size: Conv1d(4, 6, 5, padding 2) -> ReLU -> MaxPool1d(4) -> Linear(., 2),
    every layer its own module (Captum's and tangermeme's hooks see each one)."""

    def __init__(self, length: int = 20):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv1d(4, 6, 5, padding=2), nn.ReLU(), nn.MaxPool1d(4)
        self.flat, self.fc = nn.Flatten(), nn.Linear(6 * (length // 4), 2)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.relu(self.conv(x)))))


class Residual(nn.Module):
    def __init__(self, length: int):
        super().__init__()
        self.c1, self.r1 = nn.Conv1d(4, 8, 9, padding=4), nn.ReLU()
        self.c2, self.r2 = nn.Conv1d(8, 8, 5, padding=2), nn.ReLU()
        self.pool, self.flat = nn.MaxPool1d(4, 4), nn.Flatten()
        self.head = nn.Linear(8 * (length // 4), 1)

    def forward(self, x):
        h = self.r1(self.c1(x))
        h = self.r2(self.c2(h) + h)
        return self.head(self.flat(self.pool(h)))


class Trunk(nn.Module):
    def __init__(self, length: int):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv1d(4, 6, 7, padding=3), nn.ReLU(), nn.MaxPool1d(4, 4)
        self.flat, self.head = nn.Flatten(), nn.Linear(6 * (length // 4), 1)

    def forward(self, x):
        return self.head(self.flat(self.pool(self.relu(self.conv(x)))))


class Twin(nn.Module):
    def __init__(self, length: int):
        super().__init__()
        self.trunk = Trunk(length)

    def forward(self, x, y):
        return torch.sub(self.trunk(x), self.trunk(y))   # issue #43 writes torch.subtract, which from_torch does not map yet


BUILDERS = {"issue48": issue48, "issue49": Issue49, "residual": Residual, "functional": Functional49, "twin": Twin}


def build(name: str, length: int = 120, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return BUILDERS[name](length).double().eval()
