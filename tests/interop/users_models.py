"""The models users bring, written in plain PyTorch (no torchvision): a ResNet-style CNN, an
Inception-style block, a residual MLP written with ``F.relu`` and ``+``, a Conv1d genomics model on
one-hot DNA, a two-input model with a gate, and a Softmax head. Importable by any test.

``build(name)`` returns the model in float64 and eval mode, its BatchNorms with non-trivial running
statistics and affine parameters (eval mode uses them, so folding them is really exercised), and
``MODELS[name]`` its input shapes (one per ``forward`` argument) and facts the tests use.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock written out: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU;
    a 1x1 conv + BN downsample on the shortcut where the stride or the width changes.

    ``shared_relu=True`` reuses one ``self.relu`` for both ReLUs, exactly as torchvision does;
    Captum's DeepLift refuses a module used twice, so the default gives each its own module.
    """

    def __init__(self, c_in, c_out, stride=1, shared_relu=False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = self.relu if shared_relu else nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu2(out)


class SmallResNet(nn.Module):
    """Stem conv-BN-ReLU-maxpool (2 -> 3 channels), a block without and one with a 1x1 stride-2
    downsample (``block(c_in, c_out, stride=1)`` builds them: the import tests pass blocks written in
    different styles), global average pooling, flatten, Linear(4, 3). Input (2, 8, 8)."""

    def __init__(self, block):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.layer1 = block(3, 3)
        self.layer2 = block(3, 4, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class ResNet(nn.Module):
    """Stem conv3x3-BN-ReLU-MaxPool2d(2), two BasicBlocks (the second with a 1x1 stride-2
    downsample), AdaptiveAvgPool2d(1), flatten, Linear. Input (3, 16, 16), width 8."""

    def __init__(self, width=8, classes=3, shared_relu=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = BasicBlock(width, width, shared_relu=shared_relu)
        self.layer2 = BasicBlock(width, width, stride=2, shared_relu=shared_relu)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Inception(nn.Module):
    """Three branches of one input: 1x1 conv; 3x3 conv; max-pool 3 stride 1 padding 1 then 1x1 conv;
    joined by torch.cat(dim=1), then ReLU, global average pooling, Linear. Input (3, 8, 8)."""

    def __init__(self, classes=3):
        super().__init__()
        self.branch1 = nn.Conv2d(3, 4, 1)
        self.branch3 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.branch_pool = nn.Conv2d(3, 4, 1)
        self.relu = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        y = torch.cat([self.branch1(x), self.branch3(x), self.branch_pool(self.pool(x))], dim=1)
        return self.fc(self.gap(self.relu(y)).flatten(1))


class ResidualMLP(nn.Module):
    """x - 0.5, a Linear, two residual blocks h + W2 relu(W1 h) written with F.relu and +, a Linear
    head on relu(h). Input (6,)."""

    def __init__(self, features=6, hidden=8, classes=3):
        super().__init__()
        self.inp = nn.Linear(features, hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.fc3, self.fc4 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        h = self.inp(x - 0.5)
        h = h + self.fc2(F.relu(self.fc1(h)))
        h = h + self.fc4(F.relu(self.fc3(h)))
        return self.out(F.relu(h))


class DNAConv(nn.Module):
    """One-hot DNA (4 x 40): Conv1d(4, 8, 7, padding=3)-ReLU-MaxPool1d(4)-Conv1d(8, 8, 5, padding=2)-
    ReLU-global average pooling-Linear, as in DeepLIFT's genomics models."""

    def __init__(self, classes=2):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 7, padding=3)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool1d(4)
        self.conv2 = nn.Conv1d(8, 8, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        return self.fc(torch.flatten(self.gap(self.relu2(self.conv2(x))), 1))


class TwoInputs(nn.Module):
    """forward(image, vector): a conv branch (1, 8, 8) and a Linear branch (5,), joined by
    torch.cat, then a gate sigmoid(a) * tanh(b) and a Linear head."""

    def __init__(self, classes=2):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.vector = nn.Linear(5, 8)
        self.relu2 = nn.ReLU()
        self.a, self.b = nn.Linear(4 * 4 * 4 + 8, 6), nn.Linear(4 * 4 * 4 + 8, 6)
        self.head = nn.Linear(6, classes)

    def forward(self, image, vector):
        h = torch.cat([torch.flatten(self.relu1(self.bn(self.conv(image))), 1), self.relu2(self.vector(vector))], dim=1)
        return self.head(torch.sigmoid(self.a(h)) * torch.tanh(self.b(h)))


class SoftmaxHead(nn.Module):
    """A model whose last layer is nn.Softmax(dim=1) (probabilities, as many deployed models)."""

    def __init__(self, body):
        super().__init__()
        self.body, self.softmax = body, nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.body(x))


#: name -> (constructor, input shapes, piecewise linear, has max pooling)
MODELS = {
    "resnet": (ResNet, [(3, 16, 16)], True, True),
    "inception": (Inception, [(3, 8, 8)], True, True),
    "residual_mlp": (ResidualMLP, [(6,)], True, False),
    "dna": (DNAConv, [(4, 40)], True, True),
    "two_inputs": (TwoInputs, [(1, 8, 8), (5,)], False, False),
    "softmax_head": (lambda: SoftmaxHead(ResidualMLP()), [(6,)], False, False),
}


def non_trivial_batchnorm(module: nn.Module, seed: int) -> None:
    """Running mean in [-1, 1), running variance in [0.5, 1.5), weight in [-2, 2), bias in [-0.5, 0.5)."""
    g = torch.Generator().manual_seed(seed)
    n = module.num_features
    with torch.no_grad():
        module.running_mean.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1)
        module.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
        module.weight.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 4 - 2)
        module.bias.copy_(torch.rand(n, generator=g, dtype=torch.float64) - 0.5)


def build(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """MODELS[name]'s model: seeded weights, float64, eval mode, non-trivial BatchNorms."""
    torch.manual_seed(seed)
    model = MODELS[name][0](**kwargs).double()
    for i, m in enumerate(model.modules()):
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            non_trivial_batchnorm(m, seed * 1000 + i)
    return model.eval()
