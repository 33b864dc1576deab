"""The paper profiles' image code paths (CIFAR-10/100, SVHN) on synthetic data sets in torchvision's own
on-disk formats, since the real ones cannot be downloaded here.

:func:`write_cifar10`, :func:`write_cifar100` and :func:`write_svhn` write, into a temporary data root,
small random data sets in exactly the format torchvision's ``CIFAR10``, ``CIFAR100`` and ``SVHN`` read
after their download: the python pickles ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``,
``batches.meta`` and ``cifar-100-python/train``, ``test``, ``meta`` (rows of 3072 uint8 values, the
32x32 red, green and blue planes one after the other, with ``labels`` / ``fine_labels``), and SVHN's
``train_32x32.mat`` / ``test_32x32.mat`` (``X`` of shape (32, 32, 3, N) uint8, ``y`` in 1..10, 10 for
the digit 0).  The project's loaders are pointed at that root through ``$PARAMSPACE_DATA`` (documented
in :func:`paramspace.data.data_dir`; ``data/<name>`` under it is torchvision's root), with the
shipped MNIST files linked in (SVHN's second domain is MNIST).

torchvision checks the MD5 of every file against the official archives' (``_check_integrity``), and
would otherwise try to download.  The test does not bypass that check: it replaces, for the test only
(``monkeypatch``), the expected MD5s in the classes' file lists (``train_list``, ``test_list``,
``meta``, ``split_list``) by those of the synthetic files, so torchvision's own check runs and passes
on them (and would fail on a corrupted file).
"""

import hashlib
import os
import pickle
import shutil

import numpy as np
import pytest
import scipy.io
import torch
import torchvision

from paramspace import data as D
from paramspace import vision as V
from paramspace.claims import KIND_LABEL, VERDICTS
from paramspace.reports import resolve, run_all

N_TRAIN, N_TEST = 60, 20  # images per synthetic set (CIFAR-10: 5 training batches of 12)


def _md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)  # HWC, as torchvision holds CIFAR


def _rows(images):
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # a CIFAR row: R plane, G plane, B plane


def _pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(root, rng):
    """The CIFAR-10 python batches under ``root/cifar-10-batches-py``; returns the images (HWC) and
    labels of the training and test sets."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    Xtr, ytr = _images(rng, N_TRAIN), rng.integers(0, 10, N_TRAIN)
    Xte, yte = _images(rng, N_TEST), rng.integers(0, 10, N_TEST)
    per = N_TRAIN // 5
    for b in range(5):
        sl = slice(b * per, (b + 1) * per)
        _pickle(folder / f"data_batch_{b + 1}", {"batch_label": f"training batch {b + 1} of 5",
                                                 "labels": ytr[sl].tolist(), "data": _rows(Xtr[sl]),
                                                 "filenames": [f"img{i}.png" for i in range(per)]})
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": yte.tolist(),
                                    "data": _rows(Xte), "filenames": [f"t{i}.png" for i in range(N_TEST)]})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)],
                                      "num_cases_per_batch": per, "num_vis": 3072})
    return Xtr, ytr, Xte, yte


def write_cifar100(root, rng):
    """The CIFAR-100 python files ``train``, ``test``, ``meta`` under ``root/cifar-100-python``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = []
    for name, n in (("train", N_TRAIN), ("test", N_TEST)):
        X, y = _images(rng, n), rng.integers(0, 100, n)
        _pickle(folder / name, {"filenames": [f"{name}{i}.png" for i in range(n)], "batch_label": name,
                                "fine_labels": y.tolist(), "coarse_labels": (y // 5).tolist(), "data": _rows(X)})
        out += [X, y]
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return tuple(out)


def write_svhn(root, rng):
    """SVHN's ``train_32x32.mat`` and ``test_32x32.mat`` under ``root``; labels returned as torchvision
    gives them (10 -> 0)."""
    root.mkdir(parents=True)
    out = []
    for name, n in (("train", N_TRAIN), ("test", N_TEST)):
        X, y = _images(rng, n), rng.integers(1, 11, n)  # 1..10
        scipy.io.savemat(root / f"{name}_32x32.mat", {"X": X.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1)})
        out += [X, np.where(y == 10, 0, y)]
    return tuple(out)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """A data root holding the three synthetic sets (``cifar10/``, ``cifar100/``, ``svhn/``, as
    :func:`paramspace.data.load_torchvision` expects) and links to the shipped MNIST files; returns
    the root and the sets' arrays."""
    root = tmp_path_factory.mktemp("data")
    shipped = D.data_dir()
    shutil.copy(shipped / "SHA256SUMS", root / "SHA256SUMS")
    for name in ("mnist", "fashion-mnist"):
        os.symlink(shipped / name, root / name)
    rng = np.random.default_rng(0)
    sets = {"cifar10": write_cifar10(root / "cifar10", rng), "cifar100": write_cifar100(root / "cifar100", rng),
            "svhn": write_svhn(root / "svhn", rng)}
    return root, sets


@pytest.fixture
def synthetic_sets(synthetic_root, monkeypatch):
    """Points the project's loaders at the synthetic root and makes torchvision expect the synthetic
    files' MD5s (its integrity check itself still runs)."""
    root, sets = synthetic_root
    monkeypatch.setenv("PARAMSPACE_DATA", str(root))
    tv = torchvision.datasets
    for cls, key in ((tv.CIFAR10, "cifar10"), (tv.CIFAR100, "cifar100")):
        folder = root / key / cls.base_folder
        monkeypatch.setattr(cls, "train_list", [[f, _md5(folder / f)] for f, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[f, _md5(folder / f)] for f, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / cls.meta["filename"])})
    monkeypatch.setattr(tv.SVHN, "split_list", {
        split: [url, fname, _md5(root / "svhn" / fname) if split != "extra" else md5]
        for split, (url, fname, md5) in tv.SVHN.split_list.items()})
    # torchvision's download_url returns early when the file passes check_integrity; past that it would
    # go to the network: fail loudly instead
    monkeypatch.setattr(tv.utils, "_get_redirect_url", _no_download)
    monkeypatch.setattr(tv.utils, "_urlretrieve", _no_download)
    return sets


def _no_download(*args, **kwargs):
    raise AssertionError("torchvision tried to download: the synthetic files failed its integrity check")


@pytest.mark.parametrize("name,n_classes", [("cifar10", 10), ("cifar100", 100), ("svhn", 10)])
def test_synthetic_sets_load_through_torchvision_and_vision(synthetic_sets, monkeypatch, name, n_classes):
    Xtr, ytr, Xte, yte = synthetic_sets[name]
    data = V.load_data(name, 1000, 1000, 0, augment_train=True)  # more than there are: all, in file order
    assert data.sizes == (N_TRAIN, N_TEST) and data.n_classes == n_classes
    assert data.in_channels == 3 and data.image_size == 32 and data.table == "cifar"
    assert data.crop and data.flip == (name != "svhn")
    # pixel for pixel the written images (N, C, H, W) in [0, 1], and the labels (SVHN's 10 read as 0)
    torch.testing.assert_close(data.X_train, torch.as_tensor(Xtr).permute(0, 3, 1, 2).float() / 255, rtol=0, atol=0)
    torch.testing.assert_close(data.X_test, torch.as_tensor(Xte).permute(0, 3, 1, 2).float() / 255, rtol=0, atol=0)
    assert data.y_train.tolist() == ytr.tolist() and data.y_test.tolist() == yte.tolist()
    # seeded subsets, and report 3's standardised variant (per channel, training statistics)
    sub = V.load_data(name, 16, 8, 3, standardize=True)
    assert sub.sizes == (16, 8)
    torch.testing.assert_close(sub.X_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)


def test_a_corrupted_synthetic_file_fails_torchvisions_check(synthetic_sets, synthetic_root, monkeypatch):
    # the integrity check really runs: a changed byte makes torchvision want to download, which fails offline
    root, _ = synthetic_root
    path = root / "svhn" / "test_32x32.mat"
    good = path.read_bytes()
    try:
        path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        with pytest.raises(D.DataError, match="svhn.*tried to download"):
            D.load_torchvision("svhn", train=False)
        path.write_bytes(good)
        assert D.load_torchvision("svhn", train=False).data.shape == (N_TEST, 3, 32, 32)
    finally:
        path.write_bytes(good)


def _check_ledger(ledger):
    assert len(ledger) > 0 and all(c.kind in KIND_LABEL and c.verdict in VERDICTS for c in ledger)


@pytest.mark.slow  # 40-70 s on one CPU thread
def test_importance_dropconnect_paper_profile_on_synthetic_cifar10(synthetic_sets):
    # the paper profile (CIFAR-10, ResNet-18, augmentation, SGD with Nesterov momentum and weight decay,
    # the paper's DropConnect and importance settings) cut to seconds on the CPU.  Cut: images 50000/10000
    # -> 16/8 of the 60/20 synthetic ones, batch 128 -> 8, epochs 50 -> 2 and early_epochs 5 -> 1
    # (early_epochs < epochs), seeds 5 -> 1 (collapse and grid seeds 2 -> 1), collapse steps 2000 -> 2,
    # sensitivity grid 2 x 3 -> 1 x 2 cells (one retrained: min_keep 0.5 with tau 1e-3), device auto -> cpu.
    P = resolve("importance_dropconnect", "paper", dict(
        device="cpu", cpu_threads=1, n_train=16, n_test=8, batch_size=8, epochs=2, early_epochs=1, n_seeds=1,
        collapse_seeds=1, grid_seeds=1, collapse_steps=2, grid_min_keep=[0.5], grid_tau=[0.0, 1e-3]))
    assert (P["dataset"], P["arch"], P["augment"], P["optimizer"]) == ("cifar10", "resnet18", True, "sgd")
    out = run_all("importance_dropconnect", P)
    curves = out["curves"]
    assert set(curves["method"]) == {"no_dropout", "dropconnect", "importance_dc", "importance_dc_kl"}
    assert curves["epoch"].max() == 2 and curves["test_acc"].between(0, 1).all()
    assert len(out["importances"]["importance_dc"][0]) == sum(  # one importance per conv/linear weight
        p.numel() for n, p in V.resnet_cifar("resnet18", 10, 3, mean=None).named_parameters() if p.dim() > 1)
    assert set(out["collapse"]["tau"]) == {0.0, P["importance_tau"]}
    assert len(out["grid"]) == 2
    _check_ledger(out["ledger"])


@pytest.mark.slow
def test_frame_regularization_paper_profile_on_synthetic_cifar_and_svhn(synthetic_sets, monkeypatch):
    # the paper profile (CIFAR-10, CIFAR-100, SVHN x ResNet-34, ResNet-50; augmentation, SGD, weight decay,
    # gradient clipping, all corruptions, DCT SimBA) cut to minutes on one CPU thread.  Cut: images
    # 100000/100000 -> 8/4, batch 128 -> 8 (one step), epochs 200 -> 1, seeds 3 -> 1, methods (six) -> none
    # and frame (the two the claims need; robust_methods likewise), severities 1..5 -> 1, shifted images
    # 10000 -> 4, SimBA images 500 -> 2 with checkpoints up to 1000 -> 1, 2 iterations, matching checkpoints
    # 40 -> 1, device auto -> cpu.  Not a parameter: the
    # per-layer spectra of every run (frames.layer_spectra) cost about a minute per ResNet-34 run at 32x32
    # whatever the data size (exact eigenvalues per frequency of every convolution), so they are computed
    # here for the first convolution and the classifier only (the same function on fewer layers).
    from paramspace import frames as Fm
    from paramspace.reports import frame_regularization as FR

    real_spectra, real_layers = Fm.layer_spectra, Fm.regularized_layers

    def first_and_last_layer_spectra(model, sizes, A, B):
        layers = real_layers(model)
        with monkeypatch.context() as m:
            m.setattr(Fm, "regularized_layers", lambda _model: [layers[0], layers[-1]])
            return real_spectra(model, sizes, A, B)

    monkeypatch.setattr(FR, "layer_spectra", first_and_last_layer_spectra)
    P = resolve("frame_regularization", "paper", dict(
        device="cpu", cpu_threads=1, n_train=8, n_test=4, batch_size=8, epochs=1, n_seeds=1,
        methods=["none", "frame"], robust_methods=["none", "frame"], severities=[1], n_shift=4, simba_images=2,
        simba_checkpoints=[1, 2], match_checkpoints=1))
    assert P["datasets"] == ["cifar10", "cifar100", "svhn"] and P["archs"] == ["resnet34", "resnet50"]
    assert P["augment"] and P["optimizer"] == "sgd" and P["grad_clip"] > 0 and P["simba_basis"] == "dct"
    out = run_all("frame_regularization", P)
    scores = out["scores"]
    main = scores[scores.method.isin(["none", "frame"])]
    assert len(main) == 3 * 2 * 2 and set(main["dataset"]) == {"cifar10", "cifar100", "svhn"}
    assert set(main["arch"]) == {"resnet34", "resnet50"}
    _check_ledger(out["claims"])
