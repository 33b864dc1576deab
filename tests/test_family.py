"""Model families: K networks trained at once equal K separate trainings with the same seeds."""

import pytest
import torch

from paramspace import data as D
from paramspace import family as F
from paramspace.models import mlp
from paramspace.train import train


def _toy(task: str, n: int = 150, d: int = 5, seed: int = 0) -> D.Dataset:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g)
    if task == "classification":
        y = (X @ w > 0).long() + (X[:, 0] > 1).long()  # three classes
    else:
        y = X @ w + 0.1 * torch.randn(n, generator=g)
    return D.Dataset(name="toy", task=task, X_train=X[:100], y_train=y[:100], X_test=X[100:], y_test=y[100:],
                     n_classes=3 if task == "classification" else 0)


def _models(k: int, d: int, out: int, width: int = 7) -> list:
    out_models = []
    for s in range(k):
        torch.manual_seed(100 + s)
        out_models.append(mlp(d, [width], out, act="tanh"))
    return out_models


@pytest.mark.parametrize("task,optimizer,wd", [("classification", "adam", 0.0), ("regression", "sgd", 1e-3),
                                               ("classification", "sgd", 0.0)])
def test_family_training_equals_separate_trainings(task, optimizer, wd):
    data = _toy(task)
    out = 3 if task == "classification" else 1
    seeds = [0, 5, 9, 11]
    separate = _models(len(seeds), 5, out)
    batched = _models(len(seeds), 5, out)
    for a, b in zip(separate, batched):  # same initial weights
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    hists = [train(m, data, epochs=4, lr=0.05, batch_size=32, seed=s, optimizer=optimizer, weight_decay=wd,
                   device="cpu", progress=False) for m, s in zip(separate, seeds)]
    fitted, losses = F.fit_family(batched, data, seeds=seeds, epochs=4, lr=0.05, batch_size=32,
                                  optimizer=optimizer, weight_decay=wd, device="cpu", progress=False)
    assert fitted[0] is batched[0] and losses.shape == (len(seeds), 4)
    for k, (a, b) in enumerate(zip(separate, fitted)):
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(losses[k], torch.tensor(hists[k].loss, dtype=losses.dtype), rtol=1e-5, atol=1e-6)
    # different seeds really give different models (the test would be vacuous otherwise)
    assert not torch.allclose(fitted[0][0].weight, fitted[1][0].weight)


def test_family_forward_shared_and_per_model_inputs():
    models = _models(3, 4, 2)
    params, buffers, base = F.stack(models)
    X = torch.randn(6, 4)
    shared = F.family_forward(base, params, buffers, X, shared=True)
    assert shared.shape == (3, 6, 2)
    for k, m in enumerate(models):
        torch.testing.assert_close(shared[k], m(X))
    Xk = torch.randn(3, 6, 4)
    per = F.family_forward(base, params, buffers, Xk)
    for k, m in enumerate(models):
        torch.testing.assert_close(per[k], m(Xk[k]))


def test_family_rejects_mixed_architectures_and_bad_arguments():
    with pytest.raises(ValueError, match="same architecture"):
        F.stack([mlp(4, [3], 2), mlp(4, [5], 2)])
    with pytest.raises(ValueError, match="at least one"):
        F.stack([])
    data = _toy("classification")
    with pytest.raises(ValueError, match="one seed per model"):
        F.fit_family(_models(2, 5, 3), data, seeds=[0], epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        F.fit_family(_models(1, 5, 3), data, seeds=[0], epochs=1, optimizer="lbfgs", device="cpu", progress=False)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_family_with_own_rows_equals_separate_trainings_on_resamples(task):
    """Bootstrap copies: model k trained batched on ``rows[k]`` equals ``train`` on the data set whose
    training set is ``X_train[rows[k]]`` (same seed, same initial weights)."""
    from dataclasses import replace

    data = _toy(task)
    out = 3 if task == "classification" else 1
    seeds = [1000, 1001, 1002]
    g = torch.Generator().manual_seed(3)
    rows = torch.randint(0, len(data.X_train), (len(seeds), len(data.X_train)), generator=g)
    separate, batched = _models(len(seeds), 5, out), _models(len(seeds), 5, out)
    hists = [train(m, replace(data, X_train=data.X_train[r], y_train=data.y_train[r]), epochs=3, lr=0.05,
                   batch_size=32, seed=s, device="cpu", progress=False)
             for m, r, s in zip(separate, rows, seeds)]
    fitted, losses = F.fit_family(batched, data, seeds=seeds, rows=rows, epochs=3, lr=0.05, batch_size=32,
                                  device="cpu", progress=False)
    for k, (a, b) in enumerate(zip(separate, fitted)):
        assert not b.training  # evaluation mode, as train leaves it
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(losses[k], torch.tensor(hists[k].loss, dtype=losses.dtype), rtol=1e-5, atol=1e-6)
    # the rows matter: the same seeds on the full training set give other weights
    full, _ = F.fit_family(_models(len(seeds), 5, out), data, seeds=seeds, epochs=3, lr=0.05, batch_size=32,
                           device="cpu", progress=False)
    assert not torch.allclose(full[0][0].weight, fitted[0][0].weight)


def test_family_rejects_bad_rows_before_training():
    data = _toy("classification")
    n = len(data.X_train)
    models = _models(2, 5, 3)
    before = [p.clone() for p in models[0].parameters()]
    bad = {"shape": torch.zeros(3, n, dtype=torch.long),  # 3 rows for 2 models
           "dim": torch.zeros(n, dtype=torch.long),
           "empty": torch.zeros(2, 0, dtype=torch.long),
           "dtype": torch.zeros(2, n)}
    for name, rows in bad.items():
        with pytest.raises(ValueError, match=r"rows must be an integer tensor of shape \(K, m\) = \(2, m >= 1\)"):
            F.fit_family(models, data, seeds=[0, 1], rows=rows, epochs=1, device="cpu", progress=False)
    for value in (n, -1):
        rows = torch.zeros(2, n, dtype=torch.long)
        rows[1, 7] = value
        with pytest.raises(ValueError, match=rf"lie in \[0, {n - 1}\]; got values in"):
            F.fit_family(models, data, seeds=[0, 1], rows=rows, epochs=1, device="cpu", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(before, models[0].parameters()))  # nothing trained
