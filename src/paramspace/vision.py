"""The collection's image-classification path: image data sets as tensors, ResNets, training on train.fit, accuracy.

Images are tensors ``(N, C, H, W)`` with pixel values in ``[0, 1]`` (:class:`ImageData`, loaded through
:mod:`paramspace.data`); every network normalises its input itself (:class:`Normalize`), so corruptions
and attacks act on pixel values.  :func:`train_classifier` minimises cross-entropy (+ a regularizer)
with :func:`paramspace.train.fit` under a cosine learning-rate schedule.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import data as D
from .train import fit, make_optimizer

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")
DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                  "cifar100": "CIFAR-100", "svhn": "SVHN"}
RESNETS = ("resnet18", "resnet34", "resnet50")
ARCHS = ("small_resnet", "cnn", *RESNETS)
ARCH_LABELS = {"small_resnet": "small ResNet", "cnn": "small CNN", "resnet18": "ResNet-18", "resnet34": "ResNet-34",
               "resnet50": "ResNet-50"}


# --- models -----------------------------------------------------------------------------------------


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so that the network takes pixel values in ``[0, 1]``."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm, identity or 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def small_resnet(in_channels: int = 1, n_classes: int = 10, widths=(8, 16, 32), mean=(0.5,),
                 std=(0.5,)) -> nn.Sequential:
    """Normalize - conv3x3 stride 2 (width w1) - BN - ReLU - one basic block per width (stride 1 for
    the first, 2 after) - global average pool - linear.  Kaiming-normal (fan-out) initialisation of the
    convolutions, as torchvision's ResNets.  Layers are named ``stem``, ``block1.conv1``, ..., ``fc``."""
    layers = [("norm", Normalize(mean, std)), ("stem", nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False)),
              ("bn", nn.BatchNorm2d(widths[0])), ("relu", nn.ReLU())]
    c = widths[0]
    for i, w in enumerate(widths):
        layers.append((f"block{i + 1}", BasicBlock(c, w, 1 if i == 0 else 2)))
        c = w
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, n_classes))]
    net = nn.Sequential(OrderedDict(layers))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def small_cnn(in_channels: int = 1, n_classes: int = 10, width: int = 8, image_size: int = 28) -> nn.Sequential:
    """conv5x5(width) - ReLU - maxpool2 - conv5x5(2 width) - ReLU - maxpool2 - linear(64) - ReLU - linear,
    for square ``image_size`` inputs with ``in_channels`` channels (report 3's network; no
    normalisation layer: it takes standardised images)."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * side * side, 64), nn.ReLU(), nn.Linear(64, n_classes),
    )


def resnet_cifar(arch: str, n_classes: int = 10, in_channels: int = 3, mean=(0.5,), std=(0.5,)) -> nn.Module:
    """torchvision's ResNet-18/34/50 (``arch``) for small inputs such as 32x32 or 28x28: a 3x3 stride-1
    stem taking ``in_channels``, no max-pool, ``n_classes`` outputs, behind :class:`Normalize`
    (``mean``, ``std`` per channel); layers are then named ``norm`` and ``net.<torchvision name>``.
    With ``mean=None`` the bare torchvision network (for inputs already standardised)."""
    import torchvision

    if arch not in RESNETS:
        raise ValueError(f"arch must be one of {RESNETS}, got {arch!r}")
    net = getattr(torchvision.models, arch)(weights=None, num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    if mean is None:
        return net
    return nn.Sequential(OrderedDict([("norm", Normalize(mean, std)), ("net", net)]))


def build_model(arch: str, in_channels: int, n_classes: int, *, widths=(8, 16, 32), width: int = 8,
                image_size: int = 32, mean=(0.5,), std=(0.5,)) -> nn.Module:
    """A network of :data:`ARCHS` by name: :func:`small_resnet` (with ``widths``), :func:`small_cnn`
    (``width``, ``image_size``) or :func:`resnet_cifar`, each behind :class:`Normalize` (``mean``,
    ``std``), except that :func:`small_cnn` and the ResNets go without it when ``mean`` is None (for
    standardised images; :func:`load_data` with ``standardize=True``)."""
    if arch == "small_resnet":
        return small_resnet(in_channels, n_classes, tuple(widths), mean, std)
    if arch == "cnn":
        net = small_cnn(in_channels, n_classes, width, image_size)
        return net if mean is None else nn.Sequential(Normalize(mean, std), *net)
    if arch in RESNETS:
        return resnet_cifar(arch, n_classes, in_channels, mean, std)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def model_for(arch: str, data: "ImageData", *, widths=(8, 16, 32)) -> nn.Module:
    """:func:`build_model` with the channels, classes and normalisation (training-set mean and sd per
    channel) of ``data``."""
    mean, std = data.stats()
    return build_model(arch, data.in_channels, data.n_classes, widths=widths, mean=mean, std=std)


# --- data -------------------------------------------------------------------------------------------


@dataclass
class ImageData(D.ImageTensors):
    """Images as tensors with pixel values in ``[0, 1]`` (the model normalises them itself); training
    batches optionally randomly cropped and flipped."""

    table: str = "grey"  # corruption constants: "grey" or "cifar"
    crop: bool = False  # random crop (padding 4) of training batches
    flip: bool = False  # random horizontal flip of training batches

    def stats(self) -> tuple[list[float], list[float]]:
        return self.X_train.mean((0, 2, 3)).tolist(), self.X_train.std((0, 2, 3)).tolist()

    def augment_batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return augment(x, gen, self.crop, self.flip)


def augment(x: torch.Tensor, gen: torch.Generator, crop: bool, flip: bool, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and/or random horizontal flip, per image."""
    if not (crop or flip):
        return x
    B, C, H, W = x.shape
    if crop:
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=gen).to(x.device)
        xp = F.pad(x, (pad, pad, pad, pad))
        iy = (torch.arange(H, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        ix = (torch.arange(W, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        b = torch.arange(B, device=x.device)[:, None, None, None]
        c = torch.arange(C, device=x.device)[None, :, None, None]
        x = xp[b, c, iy, ix]
    if flip:
        f = (torch.rand(B, generator=gen) < 0.5).to(x.device)
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    return x


def _subset(X, y, n, rng):
    if n < len(y):
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        return X[idx], y[idx]
    return X, y


def _torchvision_tensors(name: str, train: bool):
    ds = D.load_torchvision(name, train=train)
    X = torch.as_tensor(np.asarray(ds.data))
    if X.dim() == 4 and X.shape[-1] == 3:  # CIFAR: N x 32 x 32 x 3
        X = X.permute(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(ds.labels if hasattr(ds, "labels") else ds.targets), dtype=torch.long)
    return X.float() / 255.0, y


def standardized(data: ImageData) -> ImageData:
    """``data`` with its training and test images standardised with the training images' mean and sd
    per channel (computed channel by channel, so for one channel they equal ``X_train.mean()`` and
    ``X_train.std()`` to the bit)."""
    C = data.in_channels
    mu = torch.stack([data.X_train[:, c].mean() for c in range(C)]).reshape(1, C, 1, 1)
    sd = torch.stack([data.X_train[:, c].std() for c in range(C)]).reshape(1, C, 1, 1)
    data.X_train, data.X_test = (data.X_train - mu) / sd, (data.X_test - mu) / sd
    return data


def load_data(name: str, n_train: int, n_test: int, seed: int, augment_train: bool = False, *,
              standardize: bool = False) -> ImageData:
    """MNIST / Fashion-MNIST (shipped, 28x28 grey) or CIFAR-10/100, SVHN (torchvision; needs a network
    or the files in ``data/<name>``, i.e. ``$PARAMSPACE_DATA/<name>``; see
    :func:`paramspace.data.load_torchvision`).  ``n_train``/``n_test``: seeded random subsets (all if
    larger).  ``augment_train``: random crops (+ flips, not for SVHN) of the CIFAR/SVHN training
    batches.  Pixel values in ``[0, 1]`` (the network normalises them: :func:`model_for`), or, with
    ``standardize=True`` (report 3), standardised with the training images' mean and sd per channel
    (:func:`standardized`; build the network with ``mean=None``; crops then pad with the mean)."""
    if name in ("mnist", "fashion-mnist"):
        ds = D.load_mnist(n_train=n_train, n_test=n_test, seed=seed, flatten=False, variant=name)
        data = ImageData(name, ds.X_train, ds.y_train, ds.X_test, ds.y_test, 10, "grey")
    elif name in ("cifar10", "cifar100", "svhn"):
        rng = np.random.default_rng(seed)
        Xtr, ytr = _subset(*_torchvision_tensors(name, True), n_train, rng)
        Xte, yte = _subset(*_torchvision_tensors(name, False), n_test, rng)
        n_classes = 100 if name == "cifar100" else 10
        data = ImageData(name, Xtr, ytr, Xte, yte, n_classes, "cifar", crop=augment_train,
                         flip=augment_train and name != "svhn")
    else:
        raise D.DataError(f"unknown data set {name!r}; choose one of {DATASETS}")
    return standardized(data) if standardize else data


def second_domain(name: str, n: int, seed: int):
    """A label-compatible second domain, where one is available offline: SVHN digits -> MNIST digits
    (shipped; resized to 32x32 and replicated to three channels).  ``None`` otherwise."""
    if name != "svhn":
        return None
    ds = D.load_mnist(n_test=n, n_train=1, seed=seed, flatten=False, variant="mnist")
    X = F.interpolate(ds.X_test, size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return "MNIST", X.clamp(0, 1), ds.y_test



# --- training and evaluation --------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and share of ``X`` classified as ``y`` (the model in eval mode, batches of
    ``batch_size``)."""
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        out = model(X[i:i + batch_size])
        total += float(F.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    n = max(1, len(y))
    return total / n, correct / n


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of ``X`` classified as ``y`` (the model in eval mode, batches of ``batch_size``): the
    second value of :func:`evaluate`."""
    return evaluate(model, X, y, batch_size)[1]


def checkpoint_steps(total: int, n: int) -> list[int]:
    """``n`` checkpoint steps evenly spaced over ``total`` training steps, the last at ``total``."""
    return sorted({max(1, round(k * total / n)) for k in range(1, n + 1)}) if n > 0 else []


AMP_MODES = ("off", "bf16")


def train_classifier(model: nn.Module, data: "ImageData", *, epochs: int, batch_size: int, lr: float,
                     optimizer: str = "adam", weight_decay: float = 0.0, grad_clip: float = 0.0,
                     regularizer: Callable[[nn.Module], torch.Tensor] | None = None, seed: int = 0,
                     checkpoints: int = 0, on_checkpoint: Callable[[int, int], object] | None = None,
                     amp: str = "off", channels_last: bool = False) -> dict:
    """Minimise cross-entropy + ``regularizer(model)`` with :func:`paramspace.train.fit`: ``"adam"`` or
    ``"sgd"`` (Nesterov momentum 0.9) from :func:`paramspace.train.make_optimizer`, a cosine
    learning-rate schedule stepped every batch (to 0 at the end), and, if ``grad_clip > 0``, the
    gradient norm clipped to it.  Batch order and augmentation depend on ``seed`` only.  With
    ``checkpoints = n > 0``, ``on_checkpoint(step, total)`` is called after each of the steps of
    :func:`checkpoint_steps` (the model is back in training mode afterwards).  Returns the wall time
    (``seconds``) and the mean over steps of the cross-entropy and of the regularizer.

    GPU habits that leave the method as it is (issue 14, item 4; off by default, to be kept only where
    ``tools/bench_gpu.py`` measures them faster): ``amp="bf16"`` runs the network's forward pass under
    ``torch.autocast`` in bfloat16 (the loss, the regularizer on the float32 weights and the optimizer
    stay in float32); ``channels_last`` stores the weights and each batch in NHWC order (the same
    arithmetic, another memory layout: equal to float tolerance, tested where CUDA is present). On the
    CPU ``channels_last`` is refused: with torch 2.14.1 the backward pass of :func:`small_resnet` in
    NHWC order corrupts the heap and aborts the process (seen on this project's machine)."""
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    device_type = data.X_train.device.type
    if channels_last and device_type != "cuda":
        raise ValueError("channels_last is a GPU habit: on the CPU (here: the data are on "
                         f"{device_type!r}) torch 2.14.1's NHWC backward pass aborts; use channels_last=False")
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)

    def forward(x):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if amp == "bf16":
            with torch.autocast(device_type, dtype=torch.bfloat16):
                return model(x).float()
        return model(x)

    sgd = optimizer == "sgd"
    opt = make_optimizer(model.parameters(), optimizer, lr, weight_decay=weight_decay, momentum=0.9 if sgd else 0.0,
                         nesterov=sgd)
    total = epochs * -(-len(data.y_train) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    marks = set(checkpoint_steps(total, checkpoints)) if on_checkpoint is not None else set()
    gen = torch.Generator().manual_seed(seed)
    sums = torch.zeros(2, dtype=torch.float64, device=data.X_train.device)  # cross-entropy, regularizer

    def step(batch):
        x, y = batch
        ce = F.cross_entropy(forward(x), y)
        if regularizer is None:
            sums[0] += ce.detach().double()
            return ce
        r = regularizer(model)
        sums.add_(torch.stack([ce.detach(), r.detach()]).double())
        return ce + r

    def after_step(n, _batch):
        if n in marks:
            on_checkpoint(n, total)
            model.train()

    t0 = time.perf_counter()
    out = fit(step, opt, lambda _epoch: data.batches(batch_size, gen), epochs=epochs, clip=grad_clip,
              clip_mode="norm", after_step=after_step, scheduler=sched, scheduler_every="step")
    model.eval()
    mean_ce, mean_reg = (sums / max(1, out.steps)).tolist()
    return {"seconds": time.perf_counter() - t0, "mean_ce": mean_ce, "mean_reg": mean_reg}
