"""Data loaders: synthetic law, checksum verification, shipped files and error messages."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest
import torch

from paramspace import data as D
from paramspace.data import DataError

REAL_ROOT = D.project_root() / "data"


def _have(relpath):
    return (REAL_ROOT / relpath).exists()


# --- synthetic data of report 5 ---------------------------------------------------------------


def test_synthetic_parameter_law_structure_small_by_hand():
    m, A = D.synthetic_parameter_law(4)
    np.testing.assert_array_equal(m, [1.0, 0.0025, 0.0025, 0.0025])
    expected = np.array([
        [1.0, 1e-3, 1e-3, 1e-3],
        [1e-3, 1.0, 0.95, 0.95],
        [1e-3, 0.95, 1.0, 0.95],
        [1e-3, 0.95, 0.95, 1.0],
    ])
    np.testing.assert_array_equal(A, expected)


def test_synthetic_parameter_law_default_structure_and_pd():
    m, A = D.synthetic_parameter_law()
    d = 100
    assert m.shape == (d,) and A.shape == (d, d)
    assert m[0] == 1.0 and np.all(m[1:] == 0.0025)
    assert np.all(np.diag(A) == 1.0)
    assert np.all(A[0, 1:] == 1e-3) and np.all(A[1:, 0] == 1e-3)
    block = A[1:, 1:][~np.eye(d - 1, dtype=bool)]
    assert np.all(block == 0.95)
    np.testing.assert_array_equal(A, A.T)
    # the block has eigenvalues 1 + 0.95 (d - 2) and 0.05 (multiplicity d - 2): PD
    lam = np.linalg.eigvalsh(A)
    assert lam.min() > 0
    assert lam.min() == pytest.approx(0.05, rel=1e-3)
    assert lam.max() == pytest.approx(1 + 0.95 * (d - 2), rel=1e-3)


def test_make_synthetic_relevance():
    ds = D.make_synthetic_relevance(n=10000, d=20, n_param_samples=10, seed=0)
    assert ds.task == "regression" and ds.n_features == 20
    assert len(ds.X_train) + len(ds.X_test) == 10000 and len(ds.X_test) == 2500
    # y = x_0 (X is not standardised for this data set)
    torch.testing.assert_close(ds.y_train.reshape(-1), ds.X_train[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(ds.y_test.reshape(-1), ds.X_test[:, 0], rtol=0, atol=0)
    X = ds.extra["X_raw"]
    assert X.shape == (10000, 20)
    np.testing.assert_allclose(X.mean(0), 1.0, atol=0.05)  # SE 0.01
    np.testing.assert_allclose(np.cov(X, rowvar=False), np.eye(20), atol=0.06)  # SE ~0.01-0.014
    assert ds.feature_names[:2] == ["x0", "x1"]


def test_synthetic_parameter_samples_have_covariance_A():
    ds = D.make_synthetic_relevance(n=40, d=100, n_param_samples=20000, seed=0)
    w = ds.extra["w_samples"]
    assert w.shape == (20000, 100)
    m, A = D.synthetic_parameter_law(100)
    np.testing.assert_array_equal(ds.extra["A"], A)
    np.testing.assert_array_equal(ds.extra["m"], m)
    assert np.abs(np.cov(w, rowvar=False) - A).max() < 0.05
    assert np.abs(w.mean(0) - m).max() < 0.05


def test_belsley_illustration():
    W, names = D.belsley_illustration()
    assert W.shape == (1001, 6) and len(names) == 6
    x = W[:, 5]
    np.testing.assert_allclose(x, np.linspace(0, 20, 1001), atol=1e-12)
    np.testing.assert_allclose(W[:, 0], np.sin(x), atol=1e-15)
    np.testing.assert_allclose(W[:, 1], np.cos(x), atol=1e-15)
    np.testing.assert_allclose(W[:, 4], W[:, 0] + W[:, 1], atol=1e-15)
    np.testing.assert_allclose(W[:, 2], 2 + W[:, 1], atol=1e-15)
    np.testing.assert_allclose(W[:, 3], 2 + W[:, 0], atol=1e-15)


# --- checksums --------------------------------------------------------------------------------


def _data_root(tmp_path, content=b"hello\n", name="sub/file.txt", listed=True, star=False):
    root = tmp_path / "data"
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    line = f"{digest}  {'*' if star else ''}{name}\n" if listed else ""
    (root / "SHA256SUMS").write_text(line + f"{'0' * 64}  other.bin\n")
    return root


@pytest.mark.parametrize("star", [False, True])
def test_verified_path_ok(tmp_path, star):
    root = _data_root(tmp_path, star=star)
    assert D.verified_path("sub/file.txt", root) == root / "sub/file.txt"
    assert D.read_checksums(root)["sub/file.txt"] == hashlib.sha256(b"hello\n").hexdigest()


def test_sha256_by_hand(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    # the FIPS 180-2 test vector for "abc"
    assert D.sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert D.sha256(p, chunk=1) == D.sha256(p)


def test_verified_path_env_var(tmp_path, monkeypatch):
    root = _data_root(tmp_path)
    monkeypatch.setenv("PARAMSPACE_DATA", str(root))
    assert D.data_dir() == root
    assert D.verified_path("sub/file.txt") == root / "sub/file.txt"
    (root / "sub/file.txt").write_bytes(b"hellO\n")
    with pytest.raises(DataError, match="corrupt"):
        D.verified_path("sub/file.txt")


def test_verified_path_corrupt(tmp_path):
    root = _data_root(tmp_path)
    (root / "sub/file.txt").write_bytes(b"hello!\n")
    with pytest.raises(DataError) as exc:
        D.verified_path("sub/file.txt", root)
    msg = str(exc.value)
    assert "file.txt" in msg and "corrupt" in msg


def test_verified_path_missing(tmp_path):
    root = _data_root(tmp_path)
    (root / "sub/file.txt").unlink()
    with pytest.raises(DataError) as exc:
        D.verified_path("sub/file.txt", root)
    msg = str(exc.value)
    assert "file.txt" in msg and "missing" in msg


def test_verified_path_unlisted(tmp_path):
    root = _data_root(tmp_path, listed=False)
    with pytest.raises(DataError) as exc:
        D.verified_path("sub/file.txt", root)
    assert "file.txt" in str(exc.value) and "not listed" in str(exc.value)


def test_missing_checksum_list(tmp_path):
    root = _data_root(tmp_path)
    (root / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS.*missing"):
        D.verified_path("sub/file.txt", root)


# --- IDX reader -------------------------------------------------------------------------------


def _write_idx(path, arr, dtype_code=0x08, extra=b""):
    header = bytes([0, 0, dtype_code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes() + extra)


def test_read_idx_by_hand(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(D._read_idx(tmp_path / "a.gz"), arr)
    _write_idx(tmp_path / "b.gz", arr, dtype_code=0x0D)
    with pytest.raises(DataError, match="unsigned-byte"):
        D._read_idx(tmp_path / "b.gz")
    _write_idx(tmp_path / "c.gz", arr, extra=b"\x00")
    with pytest.raises(DataError, match="header says"):
        D._read_idx(tmp_path / "c.gz")


# --- shipped files ----------------------------------------------------------------------------


@pytest.mark.skipif(not _have(D.BOSTON_FILE), reason="Boston data not present")
def test_load_boston_real():
    ds = D.load_boston()
    assert len(ds.X_train) + len(ds.X_test) == 506
    assert ds.n_features == 13 and ds.task == "regression" and ds.out_dim == 1
    assert ds.feature_names[0] == "CRIM" and ds.feature_names[-1] == "LSTAT" and len(ds.feature_names) == 13
    ytr = ds.y_train.double()
    assert ytr.shape == (len(ds.X_train), 1)
    assert ytr.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert ytr.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    Xtr = ds.X_train.double()
    np.testing.assert_allclose(Xtr.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(Xtr.std(0, unbiased=False).numpy(), 1.0, atol=1e-5)
    # y_scale undoes the standardisation: MEDV lies in [5, 50] in the original data
    ym, ys = ds.extra["y_scale"]
    raw = ds.y_train.double() * ys + ym
    assert raw.min().item() >= 5.0 - 1e-3 and raw.max().item() <= 50.0 + 1e-3
    torch.testing.assert_close(raw * 10, (raw * 10).round(), rtol=0, atol=1e-3)  # one decimal


@pytest.mark.skipif(not _have(D.BOSTON_FILE), reason="Boston data not present")
def test_load_boston_corrupt_copy(tmp_path):
    root = tmp_path / "data"
    (root / "boston-housing").mkdir(parents=True)
    shutil.copy(REAL_ROOT / "SHA256SUMS", root / "SHA256SUMS")
    text = (REAL_ROOT / D.BOSTON_FILE).read_bytes()
    (root / D.BOSTON_FILE).write_bytes(text.replace(b"24", b"25", 1))
    with pytest.raises(DataError) as exc:
        D.load_boston(root=root)
    assert "boston_housing.csv" in str(exc.value) and "corrupt" in str(exc.value)
    # an intact copy loads
    (root / D.BOSTON_FILE).write_bytes(text)
    assert D.load_boston(root=root).n_features == 13


def test_load_wine_deterministic_and_standardised():
    a, b = D.load_wine(seed=3), D.load_wine(seed=3)
    for k in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(a, k), getattr(b, k))
    c = D.load_wine(seed=4)
    assert not torch.equal(a.X_train, c.X_train)
    assert len(a.X_train) + len(a.X_test) == 178 and a.n_features == 13
    assert a.n_classes == 3 and a.out_dim == 3 and a.task == "classification"
    np.testing.assert_allclose(a.X_train.double().mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(a.X_train.double().std(0, unbiased=False).numpy(), 1.0, atol=1e-5)
    # stratified split: class proportions of train and test within one sample
    for cls in range(3):
        assert abs((a.y_train == cls).sum().item() / len(a.y_train)
                   - (a.y_test == cls).sum().item() / len(a.y_test)) < 1 / len(a.y_test) + 1e-9


def test_split_standardize_bad_task():
    with pytest.raises(ValueError, match="task"):
        D.split_standardize("x", np.zeros((8, 2)), np.zeros(8), "ranking")


MNIST_FILES = [f"mnist/{k}-ubyte.gz" for k in ("train-images-idx3", "train-labels-idx1",
                                                "t10k-images-idx3", "t10k-labels-idx1")]


@pytest.mark.skipif(not all(_have(f) for f in MNIST_FILES), reason="MNIST not present")
def test_load_mnist_subsample():
    ds = D.load_mnist(n_train=100, n_test=50)
    assert ds.X_train.shape == (100, 784) and ds.X_test.shape == (50, 784)
    assert ds.y_train.shape == (100,) and ds.y_test.shape == (50,)
    assert ds.y_train.dtype == torch.long
    assert 0 <= ds.y_train.min() and ds.y_train.max() <= 9
    assert 0 <= ds.y_test.min() and ds.y_test.max() <= 9
    assert ds.X_train.min() >= 0.0 and ds.X_train.max() <= 1.0
    assert ds.X_train.max() == 1.0  # 255 / 255 occurs in any 100 digits
    assert ds.n_classes == 10
    # pixels are k / 255 for integers k
    k = ds.X_train * 255
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-4)
    img = D.load_mnist(n_train=5, n_test=5, flatten=False)
    assert img.X_train.shape == (5, 1, 28, 28)


def test_load_torchvision_offline_error(tmp_path):
    with pytest.raises(DataError) as exc:
        D.load_torchvision("cifar10", root=tmp_path / "cifar10", download=False)
    msg = str(exc.value)
    assert "cifar10" in msg and "CIFAR10" in msg
    assert "download" in msg and str(tmp_path / "cifar10") in msg and "data/README.md" in msg


def test_unknown_dataset_names():
    with pytest.raises(DataError) as exc:
        D.load_torchvision("imagenet", download=False)
    for valid in ("cifar10", "cifar100", "svhn"):
        assert valid in str(exc.value)
    with pytest.raises(DataError) as exc:
        D.load("imagenet")
    for valid in ("wine", "boston", "synthetic", "mnist", "iris", "digits"):
        assert valid in str(exc.value)


def test_load_by_name_dispatches():
    ds = D.load("iris", seed=1)
    assert ds.name == "iris" and len(ds.X_train) + len(ds.X_test) == 150 and ds.n_features == 4
    assert torch.equal(ds.X_train, D.load_iris(seed=1).X_train)


def test_image_tensors_batches_visit_every_image_once_in_a_seeded_order():
    from paramspace.data import ImageTensors

    X = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1).expand(10, 3, 4, 4).clone()
    y = torch.arange(10)
    d = ImageTensors("toy", X, y, X[:3], y[:3])
    assert (d.in_channels, d.image_size, d.sizes, d.n_classes) == (3, 4, (10, 3), 10)
    seen = [b for _, b in d.batches(4, torch.Generator().manual_seed(0))]
    assert [len(b) for b in seen] == [4, 4, 2]
    order = torch.cat(seen)
    assert sorted(order.tolist()) == list(range(10))
    assert torch.equal(order, torch.randperm(10, generator=torch.Generator().manual_seed(0)))
    xb, yb = next(d.batches(4, torch.Generator().manual_seed(0)))
    assert torch.equal(xb[:, 0, 0, 0], yb.float())  # images travel with their labels
    assert [len(b) for _, b in d.eval_batches("test", 2)] == [2, 1]


# --- issue 16, defect 8: `make data` restores missing, empty and corrupt files, and says where the
# mirror is expected when it is absent ------------------------------------------------------------

def _restore(data, mirror):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(D.project_root() / "tools" / "restore_data.py"), "--data", str(data),
                           "--mirror", str(mirror)], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def _two_copies(tmp_path):
    files = {"a/one.txt": b"one\n", "two.bin": b"\x00\x01two"}
    sums = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in files.items())
    for folder in ("data", "mirror"):
        for k, v in files.items():
            (tmp_path / folder / k).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / k).write_bytes(v)
        (tmp_path / folder / "SHA256SUMS").write_text(sums)
    return tmp_path / "data", tmp_path / "mirror", files


def test_make_data_restores_missing_empty_and_corrupt_files(tmp_path):
    data, mirror, files = _two_copies(tmp_path)
    assert _restore(data, mirror)[0] == 0
    (data / "a/one.txt").write_bytes(b"")  # empty
    (data / "two.bin").write_bytes(b"tampered")  # corrupt
    rc, out = _restore(data, mirror)
    assert rc == 0 and "a/one.txt (it was empty)" in out and "two.bin (it was corrupt)" in out
    (data / "a/one.txt").unlink()  # missing
    rc, out = _restore(data, mirror)
    assert rc == 0 and "(it was missing)" in out
    assert all((data / k).read_bytes() == v for k, v in files.items())
    assert D.verified_path("two.bin", data) == data / "two.bin"


def test_make_data_without_a_mirror_says_where_it_is_expected(tmp_path):
    data, mirror, _ = _two_copies(tmp_path)
    (data / "two.bin").write_bytes(b"")
    rc, out = _restore(data, tmp_path / "nowhere")
    assert rc == 1 and "Traceback" not in out and "sha256sum" not in out
    assert str(tmp_path / "nowhere") in out and "does not exist" in out and "data/two.bin is empty" in out
    assert "DATA_MIRROR" in out and "README" in out


def test_make_data_never_copies_a_wrong_mirror_file(tmp_path):
    data, mirror, _ = _two_copies(tmp_path)
    (data / "two.bin").write_bytes(b"")
    (mirror / "two.bin").write_bytes(b"also wrong")
    rc, out = _restore(data, mirror)
    assert rc == 1 and "not the expected file either" in out and (data / "two.bin").read_bytes() == b""


def test_loader_message_points_to_make_data_and_the_mirror(tmp_path):
    root = _data_root(tmp_path)
    (root / "sub/file.txt").write_bytes(b"")
    with pytest.raises(DataError) as exc:
        D.verified_path("sub/file.txt", root)
    msg = str(exc.value)
    assert "make data" in msg and "empty or corrupt" in msg and "../shared/data" in msg and "PARAMSPACE_DATA" in msg
