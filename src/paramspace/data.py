"""Offline-first data loaders with checksum verification.

Every loader returns a :class:`Dataset` with a fixed, seeded train/test split, features
standardised with the *training* mean and standard deviation, and torch tensors ready for the
training loop.  Files shipped with the collection live in ``data/`` (see ``data/README.md``)
and are verified against ``data/SHA256SUMS`` before they are read.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checksums import parse_sums, sha256  # noqa: F401  (sha256 is part of this module's API)


class DataError(RuntimeError):
    """A data file is missing, corrupt, or a data set cannot be obtained."""


def project_root() -> Path:
    """The repository root (the folder holding ``data/`` and ``src/``)."""
    return Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Where data files live: ``$PARAMSPACE_DATA`` if set, else ``<repo>/data``."""
    return Path(os.environ.get("PARAMSPACE_DATA", project_root() / "data"))


def read_checksums(root: Path) -> dict[str, str]:
    sums = root / "SHA256SUMS"
    if not sums.exists():
        raise DataError(
            f"checksum list {sums} is missing; restore it with `git checkout -- data/SHA256SUMS` "
            "or copy it from ../shared/data/SHA256SUMS"
        )
    return parse_sums(sums)


def verified_path(relpath: str, root: Path | None = None) -> Path:
    """Return ``root/relpath`` after checking it exists and matches ``SHA256SUMS``.

    Raises :class:`DataError` naming the file and the fix when it is missing, unlisted or corrupt.
    """
    root = Path(root) if root is not None else data_dir()
    path = root / relpath
    fix = (
        f"restore it with `git checkout -- data/{relpath}` (the files are in git), or `make data`, which "
        f"restores missing, empty or corrupt files from the collection's offline mirror "
        f"(../shared/data next to the repository, or DATA_MIRROR=<folder>"
        + (f", with PARAMSPACE_DATA={root}" if root.resolve() != (project_root() / "data").resolve() else "")
        + "); data/README.md says where each data set comes from"
    )
    if not path.exists():
        raise DataError(f"data file {path} is missing; {fix}")
    expected = read_checksums(root).get(relpath)
    if expected is None:
        raise DataError(f"data file {relpath} is not listed in {root / 'SHA256SUMS'}; add its checksum")
    actual = sha256(path)
    if actual != expected:
        raise DataError(
            f"data file {path} is corrupt: sha256 {actual[:12]}... != expected {expected[:12]}...; {fix}"
        )
    return path


@dataclass
class Dataset:
    """A supervised data set with a fixed train/test split (torch tensors)."""

    name: str
    task: str  # "classification" or "regression"
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 0
    feature_names: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def out_dim(self) -> int:
        return self.n_classes if self.task == "classification" else 1

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {self.task}, train={tuple(self.X_train.shape)}, "
            f"test={tuple(self.X_test.shape)}, out_dim={self.out_dim})"
        )


@dataclass
class ImageTensors:
    """Images held as tensors ``(N, C, H, W)`` with labels; channels and size are read off the
    training images.  Training minibatches come in a seeded random order; :meth:`augment_batch`
    (identity here) is applied to each one."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 10

    @property
    def in_channels(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.X_train.shape[-1])

    @property
    def sizes(self):
        return len(self.y_train), len(self.y_test)

    def to(self, dev):
        for k in ("X_train", "y_train", "X_test", "y_test"):
            setattr(self, k, getattr(self, k).to(dev))
        return self

    def augment_batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return x

    def batches(self, batch_size: int, gen: torch.Generator):
        n = len(self.y_train)
        perm = torch.randperm(n, generator=gen).to(self.X_train.device)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            yield self.augment_batch(self.X_train[idx], gen), self.y_train[idx]

    def eval_batches(self, split: str, batch_size: int = 500):
        X, y = (self.X_train, self.y_train) if split == "train" else (self.X_test, self.y_test)
        for i in range(0, len(y), batch_size):
            yield X[i:i + batch_size], y[i:i + batch_size]


def split_standardize(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    test_size: float = 0.25,
    seed: int = 0,
    standardize_y: bool = False,
    feature_names: list[str] | None = None,
    standardize_X: bool = True,
) -> Dataset:
    """Seeded stratified (classification) or plain (regression) split, then standardise."""
    from sklearn.model_selection import train_test_split

    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    strat = y if task == "classification" else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=strat)
    extra = {}
    if standardize_X:
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    if task == "regression":
        ytr, yte = ytr.astype(np.float32), yte.astype(np.float32)
        if standardize_y:
            ym, ys = ytr.mean(), ytr.std()
            ytr, yte = (ytr - ym) / ys, (yte - ym) / ys
            extra["y_scale"] = (float(ym), float(ys))
        ytr_t, yte_t = torch.tensor(ytr).reshape(-1, 1), torch.tensor(yte).reshape(-1, 1)
        n_classes = 0
    else:
        ytr_t, yte_t = torch.tensor(ytr, dtype=torch.long), torch.tensor(yte, dtype=torch.long)
        n_classes = int(max(ytr.max(), yte.max()) + 1)
    return Dataset(
        name=name,
        task=task,
        X_train=torch.tensor(Xtr, dtype=torch.float32),
        y_train=ytr_t,
        X_test=torch.tensor(Xte, dtype=torch.float32),
        y_test=yte_t,
        n_classes=n_classes,
        feature_names=list(feature_names or []),
        extra=extra,
    )


# --- scikit-learn's bundled data sets -------------------------------------------------------


def _sklearn(loader, name: str, seed: int, test_size: float) -> Dataset:
    b = loader()
    return split_standardize(
        name, b.data.astype(np.float64), b.target, "classification", test_size, seed,
        feature_names=list(getattr(b, "feature_names", [])),
    )


def load_wine(seed: int = 0, test_size: float = 0.25) -> Dataset:
    """UCI Wine (178 x 13, 3 classes), shipped with scikit-learn."""
    from sklearn.datasets import load_wine as _lw

    return _sklearn(_lw, "wine", seed, test_size)


def load_iris(seed: int = 0, test_size: float = 0.25) -> Dataset:
    """Fisher's Iris (150 x 4, 3 classes), shipped with scikit-learn."""
    from sklearn.datasets import load_iris as _li

    return _sklearn(_li, "iris", seed, test_size)


def load_digits(seed: int = 0, test_size: float = 0.25) -> Dataset:
    """8x8 digits (1797 x 64, 10 classes), shipped with scikit-learn."""
    from sklearn.datasets import load_digits as _ld

    return _sklearn(_ld, "digits", seed, test_size)


# --- files shipped in data/ -----------------------------------------------------------------

BOSTON_FILE = "boston-housing/boston_housing.csv"


def load_boston(seed: int = 0, test_size: float = 0.25, root: Path | None = None) -> Dataset:
    """Boston Housing (506 x 13, target MEDV, standardised) from ``data/``.

    Feature ``B`` encodes the proportion of Black residents under a racist assumption of the
    original study; it is kept only because report 5 uses this data set (see data/README.md).
    """
    path = verified_path(BOSTON_FILE, root)
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    if table.shape[1] != len(header) or header[-1] != "MEDV":
        raise DataError(f"{path}: expected 14 columns ending in MEDV, got header {header}")
    X, y = table[:, :-1], table[:, -1]
    return split_standardize("boston", X, y, "regression", test_size, seed, standardize_y=True,
                             feature_names=header[:-1])


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_mnist(
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    flatten: bool = True,
    root: Path | None = None,
    variant: str = "mnist",
) -> Dataset:
    """MNIST (or ``variant="fashion-mnist"``) from ``data/``, pixels scaled to [0, 1].

    ``n_train``/``n_test`` take a seeded random subsample of the official splits.
    """
    files = {k: f"{variant}/{k}-ubyte.gz" for k in
             ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    arr = {k: _read_idx(verified_path(v, root)) for k, v in files.items()}
    rng = np.random.default_rng(seed)

    def pick(X, y, n):
        if n is not None and n < len(y):
            idx = np.sort(rng.choice(len(y), size=n, replace=False))
            X, y = X[idx], y[idx]
        X = torch.tensor(X, dtype=torch.float32) / 255.0
        return (X.reshape(len(X), -1) if flatten else X.unsqueeze(1)), torch.tensor(y, dtype=torch.long)

    Xtr, ytr = pick(arr["train-images-idx3"], arr["train-labels-idx1"], n_train)
    Xte, yte = pick(arr["t10k-images-idx3"], arr["t10k-labels-idx1"], n_test)
    return Dataset(variant, "classification", Xtr, ytr, Xte, yte, n_classes=10)


HAPT_FILE = "hapt/hapt_accelerometer.npz"


def load_hapt(root: Path | None = None) -> dict[str, np.ndarray]:
    """UCI HAPT accelerometer arrays (``acc``, ``activity``, ``user``, ``recording``) at 50 Hz."""
    with np.load(verified_path(HAPT_FILE, root)) as z:
        return {k: z[k] for k in z.files}


HAPT_RATE_HZ = 50
HAPT_WALKING = 1  # activity label of WALKING in HAPT


def hapt_segments(activity: int = HAPT_WALKING, min_length: int = 1, root: Path | None = None):
    """Contiguous runs of one activity in the HAPT recordings, as ``(user, signal)`` pairs.

    ``signal`` is the magnitude of the acceleration vector, ``|a| = sqrt(ax^2 + ay^2 + az^2)`` (in g,
    50 Hz), which does not depend on how the phone sat on the waist.  A run ends where the activity
    label or the recording changes."""
    z = load_hapt(root)
    mag = np.sqrt((z["acc"].astype(np.float64) ** 2).sum(1))
    key = (z["activity"] == activity) * (1 + z["recording"].astype(np.int64))
    edges = np.flatnonzero(np.diff(key) != 0) + 1
    out = []
    for s, e in zip(np.r_[0, edges], np.r_[edges, len(key)]):
        if key[s] and e - s >= min_length:
            out.append((int(z["user"][s]), mag[s:e]))
    return out


def hapt_windows(n_in: int, n_out: int, stride: int = 5, seed: int = 0, test_frac: float = 0.3,
                 activity: int = HAPT_WALKING, root: Path | None = None) -> Dataset:
    """Autoregressive windows of the HAPT walking signal: input the ``n_in`` samples before time
    ``t``, target the ``n_out`` samples from ``t`` on (:func:`hapt_segments`, 50 Hz).

    Train and test are split **by subject**: a seeded ``test_frac`` of the 30 users is held out.
    Windows start every ``stride`` samples within a segment and never cross segment boundaries.  The
    signal is standardised with the training windows' samples (one mean and scale for all
    positions), so inputs and targets share units.  ``extra`` holds ``test_segments`` (standardised
    test signals, for recovery figures), ``train_users``, ``test_users`` and ``scale`` (mean, sd in g).
    """
    segs = hapt_segments(activity, n_in + n_out, root)
    users = np.unique([u for u, _ in segs])
    rng = np.random.default_rng(seed)
    test_users = np.sort(rng.permutation(users)[: max(1, int(round(test_frac * len(users))))])
    train_sig = [s for u, s in segs if u not in test_users]
    mu, sd = float(np.concatenate(train_sig).mean()), float(np.concatenate(train_sig).std())

    def windows(signals):
        X, Y = [], []
        for s in signals:
            z = (s - mu) / sd
            for t in range(n_in, len(z) - n_out + 1, stride):
                X.append(z[t - n_in:t])
                Y.append(z[t:t + n_out])
        return np.asarray(X, np.float32), np.asarray(Y, np.float32)

    Xtr, ytr = windows(train_sig)
    test_sig = [s for u, s in segs if u in test_users]
    Xte, yte = windows(test_sig)
    return Dataset(f"hapt-{n_in}-{n_out}", "regression", torch.tensor(Xtr), torch.tensor(ytr),
                   torch.tensor(Xte), torch.tensor(yte),
                   extra=dict(test_segments=[(s - mu) / sd for s in test_sig], scale=(mu, sd),
                              train_users=sorted(set(users) - set(test_users)), test_users=list(test_users),
                              rate_hz=HAPT_RATE_HZ))


# --- data sets that need a network ----------------------------------------------------------

TORCHVISION_SETS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN"}


def load_torchvision(name: str, train: bool = True, root: Path | None = None, download: bool = True):
    """CIFAR-10/100 or SVHN through torchvision, downloading into ``data/<name>`` when possible.

    Without a network (and without the files already in place) this raises :class:`DataError`
    naming the data set and how to provide it.
    """
    import torchvision

    key = name.lower().replace("-", "")
    if key not in TORCHVISION_SETS:
        raise DataError(f"unknown torchvision data set {name!r}; choose one of {sorted(TORCHVISION_SETS)}")
    folder = Path(root) if root is not None else data_dir() / key
    cls = getattr(torchvision.datasets, TORCHVISION_SETS[key])
    kwargs = {"split": "train" if train else "test"} if key == "svhn" else {"train": train}
    try:
        return cls(root=str(folder), download=download,
                   transform=torchvision.transforms.ToTensor(), **kwargs)
    except Exception as exc:  # URLError, RuntimeError("Dataset not found"), socket errors ...
        raise DataError(
            f"data set {name} is not available offline and could not be downloaded ({type(exc).__name__}: "
            f"{exc}). It is only needed by the `paper` profile. Either run where the network is "
            f"reachable (torchvision downloads it into {folder}), or download the official archive "
            f"for {TORCHVISION_SETS[key]} elsewhere and unpack it into {folder}; see data/README.md."
        ) from exc


# --- the synthetic data set of report 5 -----------------------------------------------------


def synthetic_parameter_law(d: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``m`` and covariance ``A`` of the synthetic parameter vector of report 5.

    ``m = (1, 0.0025, ..., 0.0025)``; ``A`` has unit diagonal, ``1e-3`` on the off-diagonal
    entries of the first row and column, and ``0.95`` everywhere else: the first parameter is
    nearly independent, the other ``d - 1`` form one strongly collinear group.
    """
    m = np.full(d, 0.0025)
    m[0] = 1.0
    A = np.full((d, d), 0.95)
    A[0, :] = A[:, 0] = 1e-3
    np.fill_diagonal(A, 1.0)
    return m, A


def make_synthetic_relevance(
    n: int = 10000, d: int = 100, n_param_samples: int = 1000, seed: int = 0, test_size: float = 0.25
) -> Dataset:
    """Synthetic data of report 5: ``X ~ N(1, I)`` (``n x d``), target ``y = x_0``.

    ``extra["w_samples"]`` holds ``n_param_samples`` draws of the parameter vector
    ``w ~ N(m, A)`` (:func:`synthetic_parameter_law`), whose covariance has a known collinear
    block, and ``extra["m"]``, ``extra["A"]`` the law itself.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(1.0, 1.0, size=(n, d))
    y = X[:, 0].copy()
    m, A = synthetic_parameter_law(d)
    w = rng.multivariate_normal(m, A, size=n_param_samples, method="cholesky")
    ds = split_standardize("synthetic", X, y, "regression", test_size, seed, standardize_X=False,
                           feature_names=[f"x{i}" for i in range(d)])
    ds.extra.update(w_samples=w, m=m, A=A, X_raw=X)
    return ds


def belsley_illustration(step: float = 0.02, stop: float = 20.0) -> tuple[np.ndarray, list[str]]:
    """The report's toy parameter set: rows ``(sin x, cos x, 2+cos x, 2+sin x, cos x+sin x, x)``.

    ``x`` runs over ``[0, stop]`` with the given step.  Columns 0, 1 and 4 are exactly collinear
    (``cos x + sin x``), and columns 2, 3 add a constant to 1 and 0.
    """
    x = np.arange(0.0, stop + step / 2, step)
    W = np.stack([np.sin(x), np.cos(x), 2 + np.cos(x), 2 + np.sin(x), np.cos(x) + np.sin(x), x], axis=1)
    names = ["sin x", "cos x", "2 + cos x", "2 + sin x", "cos x + sin x", "x"]
    return W, names


LOADERS = {
    "wine": load_wine,
    "iris": load_iris,
    "digits": load_digits,
    "boston": load_boston,
    "synthetic": make_synthetic_relevance,
    "mnist": load_mnist,
}


def load(name: str, **kwargs) -> Dataset:
    """Load a data set by name (see ``LOADERS``)."""
    if name not in LOADERS:
        raise DataError(f"unknown data set {name!r}; valid names: {', '.join(sorted(LOADERS))}")
    return LOADERS[name](**kwargs)
