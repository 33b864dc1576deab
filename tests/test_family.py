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
