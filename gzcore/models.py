"""CNNs by name, each ending in a head: the Galaxy Zoo decision-tree head or plain regression.

`build(name, **config)` returns a `GalaxyModel`: normalisation (kept with the model as buffers) ->
backbone (image -> feature vector) -> head. `forward` maps images (B, C, H, W) scaled to [0, 1] to
outputs (B, 37), which obey the tree for any input. `build("ensemble", members=[config, ...])`
returns an `Ensemble` that averages several such models. Imports only torch/torchvision.
"""
from __future__ import annotations

import copy
import inspect
import math

import torch
from torch import nn

from . import tree

# ------------------------------------------------------------------ heads


def _tree_plan():
    """(question, parent question, parent answer offset) in build order; parent None = reach 1."""
    plan = []
    for number in tree.BUILD_ORDER:
        q = tree.QUESTION_BY_NUMBER[number]
        if q.reached_by is None:
            plan.append((number, None, None))
        else:
            parent = tree.QUESTION_OF_COLUMN[q.reached_by]
            plan.append((number, parent, tree.COLUMN_INDEX[q.reached_by] - tree.SLICES[parent].start))
    return plan


class TreeHead(nn.Module):
    """Features -> 37 weighted answer fractions that obey the decision tree exactly.

    Each question's logits go through a softmax, then are multiplied by the weighted value of the
    answer that leads to the question. (Dieleman's ReLU-then-normalise stalled in our runs: a
    question whose logits all fall below zero stops learning; softmax always has a gradient.)
    """

    def __init__(self, in_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, tree.N_ANSWERS)
        self.plan = _tree_plan()

    def conditional(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-question distributions (B, 37) from raw logits."""
        out = []
        for number in range(1, 12):
            s = tree.SLICES[number]
            out.append(torch.softmax(logits[:, s], dim=1))
        return torch.cat(out, dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cond = self.conditional(self.linear(features).float())
        parts: dict[int, torch.Tensor] = {}
        for number, parent, offset in self.plan:
            s = tree.SLICES[number]
            parts[number] = cond[:, s] if parent is None else \
                cond[:, s] * parts[parent][:, offset:offset + 1]
        return torch.cat([parts[n] for n in range(1, 12)], dim=1)


class RegressionHead(nn.Module):
    """Features -> `n_outputs` unconstrained scalars (for e.g. metallicity or colour targets)."""

    def __init__(self, in_features: int, n_outputs: int = 1):
        super().__init__()
        self.linear = nn.Linear(in_features, n_outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).float()


# ------------------------------------------------------------------ backbones


def _conv_bn(c_in, c_out, k=3, stride=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), act(inplace=True))


class DielemanNet(nn.Module):
    """The default: a small, fast CNN in the spirit of Dieleman et al. (2015) — stacked small
    convolutions with pooling, then a dense layer — with batch norm and a stride-2 first layer so
    that it trains at hundreds of images/s on two CPU cores. Width 24 (387 k parameters, 25 M
    multiply-adds at 64 px) reached the same 10-minute validation RMSE as width 32 with a third
    more epochs; 16 was worse."""

    def __init__(self, in_channels: int = 3, width: int = 24, dense: int = 256, dropout: float = 0.1):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_channels, w, 3, 2), _conv_bn(w, w, 3), nn.MaxPool2d(2),
            _conv_bn(w, 2 * w, 3), _conv_bn(2 * w, 2 * w, 3), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w, 3), _conv_bn(4 * w, 4 * w, 3), nn.MaxPool2d(2),
            _conv_bn(4 * w, 8 * w, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dense = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, dense), nn.ReLU(inplace=True))
        self.out_features = dense

    def forward(self, x):
        return self.dense(self.features(x))


class SelfAttention(nn.Module):
    """fastai's simple self-attention over spatial positions (SAGAN style, gamma starts at 0)."""

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv1d(channels, channels // 8, 1, bias=False)
        self.key = nn.Conv1d(channels, channels // 8, 1, bias=False)
        self.value = nn.Conv1d(channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        flat = x.flatten(2)                                   # (B, C, HW)
        attn = torch.softmax(self.query(flat).transpose(1, 2) @ self.key(flat), dim=-1)  # (B, HW, HW)
        out = self.value(flat) @ attn.transpose(1, 2)
        return x + self.gamma * out.view(b, c, h, w)


class XResBlock(nn.Module):
    """xresnet basic block: two 3x3 convs, zero-init last BN, avg-pool shortcut when downsampling."""

    def __init__(self, c_in, c_out, stride, act, attention=False):
        super().__init__()
        self.convs = nn.Sequential(_conv_bn(c_in, c_out, 3, stride, act),
                                   nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        nn.init.zeros_(self.convs[-1].weight)
        self.attention = SelfAttention(c_out) if attention else nn.Identity()
        short = []
        if stride != 1:
            short.append(nn.AvgPool2d(stride, ceil_mode=True))
        if c_in != c_out:
            short += [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.shortcut = nn.Sequential(*short)
        self.act = act(inplace=True)

    def forward(self, x):
        return self.act(self.attention(self.convs(x)) + self.shortcut(x))


class XResNet(nn.Module):
    """xresnet (Bag of Tricks stem and shortcuts) with Mish and self-attention, after the fastai
    xresnet34 used by Wu & Boada (2019) for galaxy metallicities."""

    def __init__(self, in_channels: int = 3, layers=(3, 4, 6, 3), width: int = 32):
        super().__init__()
        act = nn.Mish
        stem = [_conv_bn(in_channels, width, 3, 2, act), _conv_bn(width, width, 3, 1, act),
                _conv_bn(width, 2 * width, 3, 1, act), nn.MaxPool2d(3, 2, 1)]
        blocks, c = [], 2 * width
        for i, n in enumerate(layers):
            c_out = 2 * width * 2 ** i
            for j in range(n):
                last_of_stage2 = i == 1 and j == n - 1
                blocks.append(XResBlock(c, c_out, 2 if (j == 0 and i > 0) else 1, act, last_of_stage2))
                c = c_out
        self.body = nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = c

    def forward(self, x):
        return self.body(x)


class TorchvisionResNet(nn.Module):
    """torchvision ResNet18/34/50, random init (no pretrained weights are ever downloaded)."""

    def __init__(self, arch: str, in_channels: int = 3):
        super().__init__()
        import torchvision  # here, not at the top: importing it costs every command 2-3 s
        net = getattr(torchvision.models, arch)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.out_features = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x):
        return self.net(x)


BACKBONES = {  # name -> backbone(in_channels, **options); `width` where the family has one
    "dieleman": DielemanNet,
    "resnet18": lambda in_channels=3: TorchvisionResNet("resnet18", in_channels),
    "resnet34": lambda in_channels=3: TorchvisionResNet("resnet34", in_channels),
    "resnet50": lambda in_channels=3: TorchvisionResNet("resnet50", in_channels),
    "xresnet34": lambda in_channels=3, width=32: XResNet(in_channels, (3, 4, 6, 3), width),
    "xresnet18": lambda in_channels=3, width=32: XResNet(in_channels, (2, 2, 2, 2), width),
}
HEADS = {"tree": TreeHead, "regression": RegressionHead}


class GalaxyModel(nn.Module):
    """Normalise -> backbone -> head. Input: (B, C, H, W) floats in [0, 1]."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean, std):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The feature vector the head reads ("galaxies like this" use it)."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class Ensemble(nn.Module):
    """Several tree models averaged, as the Kaggle winners did. The tree's constraints are linear,
    so the mean of outputs that obey the tree obeys it too. `embed` concatenates the members'
    feature vectors; `members` are `GalaxyModel`s (explanations average over them)."""

    def __init__(self, members: list[GalaxyModel]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed(x) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def members(model: GalaxyModel | Ensemble) -> list[GalaxyModel]:
    """The single models inside `model`: its members for an ensemble, else itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def folded(model: nn.Module) -> nn.Module:
    """A copy of `model` for inference (eval mode) with each batch norm that follows a convolution
    in a Sequential folded into that convolution: the same outputs up to float rounding, about 10 %
    faster on a CPU (docs/BENCHMARKS.md). Training and explanations use the model itself."""
    model = copy.deepcopy(model).eval()
    for block in model.modules():
        if isinstance(block, nn.Sequential):
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = nn.utils.fusion.fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
    return model


# The largest model `build` makes: 200 M parameters (0.8 GB of float32 weights, 8x resnet50). A
# bigger one is an edited config or a typo (width 100000 would ask for terabytes), refused before
# anything is allocated.
MAX_PARAMETERS = 200_000_000
MAX_IN_CHANNELS = 16    # image bands a model reads (1 grey, 3 colour)
MAX_OUTPUTS = 10_000    # a regression head's outputs (targets, or a classifier's classes)


def parameter_count(name: str, width: int | None = None, in_channels: int = 3) -> int:
    """The backbone's parameters, counted on PyTorch's "meta" device: nothing is allocated."""
    with torch.device("meta"):
        backbone = BACKBONES[name](in_channels=in_channels, **({} if width is None else {"width": width}))
    return sum(p.numel() for p in backbone.parameters())


def check_size(name: str, width) -> None:
    """ValueError when the backbone `name` cannot be built at `width`, or would be larger than
    `MAX_PARAMETERS`; checked before anything is allocated."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width {width!r} is not a whole number of channels (1 or more)")
    if width <= 64:  # every family is far below the bound there (xresnet34: 85 M): no need to count
        return
    try:
        count = parameter_count(name, width)
    except (RuntimeError, ValueError) as e:  # too narrow for the architecture's layers
        raise ValueError(f"model {name!r} cannot be built at width {width} ({' '.join(str(e).split())})") from e
    if count > MAX_PARAMETERS:
        raise ValueError(f"model {name!r} at width {width} would have {count:,} parameters "
                         f"({count * 4 / 1e9:,.1f} GB of weights); gzcore builds at most "
                         f"{MAX_PARAMETERS:,}: choose a smaller width")


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_config(config, where: str = "model_config") -> None:
    """ValueError naming the key (`where` names the config, e.g. in a checkpoint) when `config`
    is not one `build` makes: an unknown key or name, a value of the wrong kind, or a model too
    large to allocate. Checkpoints are checked with it before their model is built."""
    if not isinstance(config, dict):
        raise ValueError(f"{where} is not a set of options (found {type(config).__name__})")
    known = list(inspect.signature(build).parameters)
    unknown = [k for k in config if k not in known]
    if unknown:
        raise ValueError(f"{where} has an unknown key {unknown[0]!r}; a model is built from "
                         f"{', '.join(known)}")
    name, head = config.get("name", "dieleman"), config.get("head", "tree")
    if not isinstance(head, str) or head not in HEADS:
        raise ValueError(f"{where}: head {head!r} is not one gzcore builds ({', '.join(HEADS)})")
    if name == "ensemble":
        members = config.get("members")
        if not isinstance(members, list) or not members:
            raise ValueError(f"{where}: an ensemble needs a list of member configs under 'members'")
        for i, member in enumerate(members):
            check_config(member, f"{where}.members[{i}]")
        return
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"{where}: model name {name!r} is not one gzcore builds ({', '.join(BACKBONES)})")
    if config.get("members") is not None:
        raise ValueError(f"{where}: 'members' belongs to an ensemble, not to a {name!r} model")
    in_channels = config.get("in_channels", 3)
    if not _whole(in_channels, 1, MAX_IN_CHANNELS):
        raise ValueError(f"{where}: in_channels {in_channels!r} is not a number of bands from 1 to "
                         f"{MAX_IN_CHANNELS}")
    if not _whole(config.get("n_outputs", 1), 1, MAX_OUTPUTS):
        raise ValueError(f"{where}: n_outputs {config['n_outputs']!r} is not a number of outputs from 1 to "
                         f"{MAX_OUTPUTS:,}")
    for key in ("mean", "std"):
        values = config.get(key)
        if values is not None and (not isinstance(values, (list, tuple)) or len(values) != in_channels or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
                                   or (key == "std" and min(values) <= 0)):
            raise ValueError(f"{where}: {key} {values!r} is not {in_channels} finite number(s), one per band"
                             + (", each above 0" if key == "std" else ""))
    width = config.get("width")
    if width is not None:
        if not has_width(name):
            raise ValueError(f"{where}: model {name!r} has no width option, but width is {width!r}")
        try:
            check_size(name, width)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def has_width(name: str) -> bool:
    """Whether the backbone family `name` takes a `width` option."""
    return name in BACKBONES and "width" in inspect.signature(BACKBONES[name]).parameters


def build(name: str = "dieleman", head: str = "tree", in_channels: int = 3, n_outputs: int = 1,
          mean=None, std=None, width: int | None = None,
          members: list[dict] | None = None) -> GalaxyModel | Ensemble:
    """A model by name (see BACKBONES) with the decision-tree head or a regression head.
    `width` (channels of the first stage) overrides the family's default where it has one.
    name "ensemble" averages the models built from the configs in `members`.
    The model carries the arguments that rebuild it as `model.config` (checkpoints store it)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if name == "ensemble":
        if not members:
            raise ValueError("an ensemble needs at least one member config")
        model = Ensemble([build(**config) for config in members])
        model.config = {"name": name, "head": head, "members": [m.config for m in model.members]}
        return model
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(BACKBONES)}")
    if width is not None and not has_width(name):
        raise ValueError(f"model {name!r} has no width option")
    if width is not None:
        check_size(name, width)  # before allocating: a width of 100000 would ask for terabytes
    options = {} if width is None else {"width": width}
    backbone = BACKBONES[name](in_channels=in_channels, **options)
    head_module = TreeHead(backbone.out_features) if head == "tree" else \
        RegressionHead(backbone.out_features, n_outputs)
    mean = [0.0] * in_channels if mean is None else [float(v) for v in mean]
    std = [1.0] * in_channels if std is None else [float(v) for v in std]
    model = GalaxyModel(backbone, head_module, mean, std)
    model.config = {"name": name, "head": head, "in_channels": in_channels, "mean": mean, "std": std,
                    "width": width, **({"n_outputs": n_outputs} if head == "regression" else {})}
    return model
