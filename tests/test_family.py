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


# --- families of mean-field variational networks ----------------------------------------------

from paramspace import hypernet as H, variational as V  # noqa: E402
from paramspace.train import clip_gradients  # noqa: E402

VI = dict(hidden=[6], epochs=3, lr=0.02, batch_size=16, prior_sigma=1.0, device="cpu")


def _assert_same_models(separate, batched, rtol=1e-5, atol=1e-6):
    for a, b in zip(separate, batched):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(q, p, rtol=rtol, atol=atol, msg=name)


def test_variational_family_equals_separate_fit_variational():
    data = _toy("classification")
    seeds, kl_weights = [0, 3, 7], [0.0, 0.5, 2.0]
    separate = [V.fit_variational(data, seed=s, kl_weight=w, **VI) for s, w in zip(seeds, kl_weights)]
    fitted, losses = F.fit_variational_family(data, seeds=seeds, kl_weights=kl_weights, **VI)
    assert losses.shape == (3, VI["epochs"])
    _assert_same_models([m for m, _ in separate], fitted)
    for k, (_, hist) in enumerate(separate):
        torch.testing.assert_close(losses[k], torch.tensor(hist.loss, dtype=losses.dtype), rtol=1e-6, atol=1e-6)
    # the noise matters: the same family with other noise generators trains other weights
    models, _ = F.seeded_models(lambda: mlp(5, [6], 3, "relu", linear=V.BayesLinear), seeds, "cpu")
    other = [torch.Generator().manual_seed(1000 + k) for k in range(3)]
    moved, _, _, _ = F.fit_bayes_family(models, data, seeds=seeds, kl_weights=kl_weights, generators=other,
                                        epochs=VI["epochs"], lr=VI["lr"], batch_size=VI["batch_size"], device="cpu")
    assert not torch.allclose(moved[0][0].weight_mu, fitted[0][0].weight_mu, atol=1e-4)


@pytest.mark.parametrize("optimizer,clip,clip_mode", [("adam", 0.05, "value"), ("sgd", 0.5, "norm"),
                                                      ("adam", 0.0, "value")])
def test_variational_family_equals_report2_separate_trainings(optimizer, clip, clip_mode):
    """Report 2's trainer (hypernet.train_separate: local reparameterisation, one λ per model, every λ
    from the same initialisation, test accuracy traced while training) against the batched family."""
    data = _toy("classification")
    lams, seed = [0.0, 0.1, 10.0], 4
    build = lambda: H.bayes_mlp([6], prior_sigma=0.3, init_sigma=0.05, local_reparam=True, in_dim=5, out_dim=3)  # noqa: E731
    kw = dict(epochs=3, batch_size=32, optimizer=optimizer, lr=0.01, clip=clip, clip_mode=clip_mode, device="cpu")
    separate = []
    for lam in lams:
        models, _ = F.seeded_models(build, [seed], "cpu")
        hist, steps, trace = H.train_separate(models[0], data, lam, seed=seed, eval_every=3, **kw)
        separate.append((models[0], hist, steps, trace))
    models, gens = F.seeded_models(build, [seed] * len(lams), "cpu")
    fitted, losses, steps, traces = F.fit_bayes_family(models, data, seeds=[seed] * len(lams), kl_weights=lams,
                                                       generators=gens, eval_every=3, **kw)
    assert steps == separate[0][2] == 3 * 4  # 100 examples in batches of 32
    _assert_same_models([s[0] for s in separate], fitted)
    for k, (_, hist, _, trace) in enumerate(separate):
        torch.testing.assert_close(losses[k], torch.tensor(hist.loss, dtype=losses.dtype), rtol=1e-6, atol=1e-6)
        assert [s for s, _ in traces[k]] == [s for s, _ in trace] == [3, 6, 9, 12]
        assert [a for _, a in traces[k]] == pytest.approx([a for _, a in trace])
    # λ really changes the models (same initialisation, same noise, same batches)
    assert not torch.allclose(fitted[0][0].weight_rho, fitted[2][0].weight_rho)


def test_clip_norm_per_model_is_clip_grad_norm_of_each_slice():
    g = torch.Generator().manual_seed(0)
    stacked = [torch.zeros(3, 4, 2, requires_grad=True), torch.zeros(3, 5, requires_grad=True)]
    for p in stacked:
        p.grad = torch.randn(p.shape, generator=g) * torch.tensor([0.01, 1.0, 10.0]).reshape(-1, *[1] * (p.dim() - 1))
    expected = []
    for k in range(3):
        ps = [torch.zeros_like(p[k], requires_grad=True) for p in stacked]
        for q, p in zip(ps, stacked):
            q.grad = p.grad[k].clone()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        expected.append([q.grad for q in ps])
    clip_gradients(stacked, 1.0, "norm_per_model")
    for k in range(3):
        for p, e in zip(stacked, expected[k]):
            torch.testing.assert_close(p.grad[k], e)
    # the small model is below the threshold and untouched; the others end with norm 1
    norms = torch.linalg.vector_norm(torch.stack([p.grad.flatten(1).norm(dim=1) for p in stacked]), dim=0)
    assert norms[1:].tolist() == pytest.approx([1.0, 1.0], rel=1e-5) and norms[0] < 0.5


def test_variational_family_rejects_bad_input_before_training():
    data = _toy("classification")
    with pytest.raises(ValueError, match="one kl weight per seed"):
        F.fit_variational_family(data, seeds=[0, 1], kl_weights=[1.0], **VI)
    models, gens = F.seeded_models(lambda: H.bayes_mlp([4], prior_sigma=1.0, init_sigma=0.05, local_reparam=False,
                                                       in_dim=5, out_dim=3), [0, 1], "cpu")
    before = [p.detach().clone() for p in models[0].parameters()]
    kw = dict(epochs=1, lr=0.01, batch_size=16, device="cpu")
    bad = [(dict(seeds=[0], kl_weights=1.0, generators=gens), "one of seeds per model"),
           (dict(seeds=[0, 1], kl_weights=[1.0, -1.0], generators=gens), "kl_weights must be >= 0"),
           (dict(seeds=[0, 1], kl_weights=1.0, generators=gens[:1]), "one of generators per model"),
           (dict(seeds=[0, 1], kl_weights=1.0, generators=gens, clip_mode="both"), "clip_mode"),
           (dict(seeds=[0, 1], kl_weights=1.0, generators=gens, optimizer="lbfgs"), "optimizer"),
           (dict(seeds=[0, 1], kl_weights=1.0, generators=gens, eval_every=-1), "eval_every")]
    for extra, msg in bad:
        with pytest.raises(ValueError, match=msg):
            F.fit_bayes_family(models, data, **{**kw, **extra})
    assert all(torch.equal(p, q) for p, q in zip(before, models[0].parameters()))  # nothing trained
    with pytest.raises(ValueError, match="BayesLinear"):
        F.fit_bayes_family(_models(2, 5, 3), data, seeds=[0, 1], kl_weights=1.0, generators=gens, **kw)
    other = H.bayes_mlp([4], prior_sigma=2.0, init_sigma=0.05, local_reparam=False, in_dim=5, out_dim=3)
    with pytest.raises(ValueError, match="same layers, priors"):
        F.fit_bayes_family([models[0], other], data, seeds=[0, 1], kl_weights=1.0, generators=gens, **kw)


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
