"""The compression leaderboard (reports/compression_leaderboard.py): curve summaries by hand, shared models,
exact parameter counting, plan/execute/summarize and the rules across parameters."""

import numpy as np
import pytest
import torch

from paramspace import pruning, reports
from paramspace.reports import compression_leaderboard as LB
from paramspace.models import n_params

SMOKE = reports.resolve("compression_leaderboard", "smoke")


def test_auc_of_the_diagonal_is_one_half_whatever_the_order():
    assert LB.auc([0, 0.5, 1], [0, 0.5, 1]) == pytest.approx(0.5)
    assert LB.auc([1, 0, 0.5], [1, 0, 0.5]) == pytest.approx(0.5)
    # a constant curve at a has area a; points (0, .5), (.2, 1), (1, 1) by trapezoids: .2 * .75 + .8 * 1
    assert LB.auc([0, 1], [0.7, 0.7]) == pytest.approx(0.7)
    assert LB.auc([0, 0.2, 1], [0.5, 1, 1]) == pytest.approx(0.2 * 0.75 + 0.8 * 1.0)


def test_min_kept_within_walks_down_from_the_full_network():
    kept = [1, 0.75, 0.5, 0.25, 0]
    acc = [0.90, 0.895, 0.88, 0.895, 0.1]
    # 0.895 is within 1 pp of 0.90, 0.88 is not: stop at 0.75 although 0.25 recovers
    assert LB.min_kept_within(kept, acc, 0.90, 1.0) == 0.75
    assert LB.min_kept_within(kept, acc, 0.90, 2.5) == 0.25
    assert LB.min_kept_within(kept, acc, 0.90, 100.0) == 0.0
    # nothing below the full network within the tolerance: the whole network is needed
    assert LB.min_kept_within(kept, [0.9, 0.5, 0.5, 0.5, 0.1], 0.9, 1.0) == 1.0


def test_mnist_is_average_pooled_blockwise():
    ds = LB.load_task("mnist", n_train=20, n_test=10, mnist_pool=4, seed=0)
    from paramspace.data import load_mnist

    raw = load_mnist(20, 10, seed=0)
    assert ds.X_train.shape == (20, 49) and ds.X_test.shape == (10, 49)
    img = raw.X_train[3].reshape(28, 28)
    # pooled pixel (row 2, column 5) is the mean of rows 8..11, columns 20..23
    assert ds.X_train[3, 2 * 7 + 5].item() == pytest.approx(img[8:12, 20:24].mean().item(), abs=1e-6)
    assert torch.equal(ds.y_train, raw.y_train)


def _fitted(seed=0, hidden=5):
    p = {**SMOKE, "hidden": hidden}
    ds = LB.load_task("wine", seed=seed, n_train=p["n_train"], n_test=p["n_test"], mnist_pool=p["mnist_pool"])
    bayes, det = LB.fit(ds, hidden=hidden, train_steps=p["train_steps"], batch_size=p["batch_size"], lr=p["lr"],
                        prior_sigma=p["prior_sigma"], kl_weight=p["kl_weight"], seed=seed, device="cpu")
    return p, ds, bayes, det


def test_shared_model_is_the_posterior_mean_and_neuron_gaussians_are_its_rows():
    p, ds, bayes, det = _fitted()
    layer = bayes[0]
    assert torch.equal(det[0].weight, layer.weight_mu) and torch.equal(det[0].bias, layer.bias_mu)
    means, var = LB.neuron_gaussians(bayes)
    assert means.shape == var.shape == (5, ds.n_features + 1)
    j = 2
    np.testing.assert_allclose(means[j, :-1], layer.weight_mu[j].detach().double().numpy())
    np.testing.assert_allclose(means[j, -1], layer.bias_mu[j].item(), rtol=1e-6)
    np.testing.assert_allclose(var[j, :-1], (layer.weight_sigma[j] ** 2).detach().double().numpy(), rtol=1e-6)


def test_importance_scores_rank_biases_last_and_stay_on_the_simplex():
    p, ds, bayes, det = _fitted()
    sc = LB.importance_scores(det, ds, batches=3, batch_size=p["batch_size"], eta=p["importance_lr"],
                              gamma=p["importance_gamma"], tau=p["importance_tau"], seed=0)
    assert set(sc) == {n for n, _ in det.named_parameters()}
    weights = [n for n in sc if n.endswith("weight")]
    biases = [n for n in sc if n.endswith("bias")]
    for n in weights:  # each layer's importances lie on |X| * simplex
        assert sc[n].min() >= 0 and sc[n].sum().item() == pytest.approx(sc[n].numel(), rel=1e-4)
    assert min(sc[n].min() for n in biases) > max(sc[n].max() for n in weights)
    # removing exactly as many parameters as there are weights removes every weight and no bias
    n_w = sum(sc[n].numel() for n in weights)
    pruned = pruning.prune_by_scores(det, sc, n_w / n_params(det))
    for n, prm in pruned.named_buffers():
        if n.endswith("weight_mask"):
            assert prm.sum() == 0
        if n.endswith("bias_mask"):
            assert prm.all()


def test_smoke_run_counts_parameters_exactly_and_shares_the_end_points():
    p = {**SMOKE, "n_seeds": 1}
    threads = torch.get_num_threads()
    runs = LB.plan(p)
    assert [(r["dataset"], r["seed"]) for r in runs] == [(d, p["seed"]) for d in p["datasets"]]
    res = LB.summarize(p, [LB.execute(r) for r in runs])
    assert torch.get_num_threads() == threads  # cpu_threads applies inside the run only
    curves, models = res["curves"], res["models"]
    assert set(curves.criterion) == set(LB.CRITERIA)
    h = p["hidden"]
    for d, g in curves.groupby("dataset"):
        mod = models[models.dataset == d].iloc[0]
        P = mod.n_params
        for crit, c in g.groupby("criterion"):
            # every curve holds the full network and the empty one
            assert c[c.kept == 1.0].accuracy.iloc[0] == pytest.approx(mod.accuracy), (d, crit)
            assert c[c.kept == 0.0].accuracy.iloc[0] == pytest.approx(mod.zero_accuracy), (d, crit)
        # k clusters keep (in+1)k + (k+1)c parameters: solve for in and c from P = (in+1)h + (h+1)c
        n_out = 10 if d.startswith("mnist") else 3
        n_in = (P - (h + 1) * n_out) // h - 1
        cl = g[g.criterion == "cluster_w2"].sort_values("n_kept")
        expected = [0] + [(n_in + 1) * k + (k + 1) * n_out for k in range(1, h)] + [P]
        assert cl.n_kept.tolist() == expected
        assert np.allclose(cl.kept, np.array(expected) / P)
    board = res["board"]
    assert board.equals(LB.leaderboard(res, p))
    assert len(board) == len(p["datasets"]) * len(LB.CRITERIA)
    assert (res["timing"].seconds >= 0).all()
    md = res["board_markdown"]
    lines = md.splitlines()
    assert lines[0].startswith("| data set | rank | criterion |") and len(lines) == 2 + len(board)
    # ranks restart at 1 in every data set, and every row has as many cells as the header
    ranks = [int(line.split(" | ")[1]) for line in lines[2:]]
    assert ranks == list(range(1, len(LB.CRITERIA) + 1)) * len(p["datasets"])
    assert all(line.replace("\\|", "").count("|") == lines[0].count("|") for line in lines)
    assert "magnitude \\|w\\|" in md  # the pipe in a label is escaped, not a column break
    # training is charged: the Bayesian one to the criteria that read sigma, a plain MLP's to the rest
    t = res["timing"].merge(models[["dataset", "seed", "bayes_train_s", "plain_train_s"]], on=["dataset", "seed"])
    need = t.criterion.isin(LB.NEEDS_POSTERIOR)
    assert np.allclose(t.train_seconds[need], t.bayes_train_s[need])
    assert np.allclose(t.train_seconds[~need], t.plain_train_s[~need])
    assert np.allclose(t.total_seconds, t.seconds + t.train_seconds)
    # the same number of steps on every data set, whatever its size
    assert (models.steps >= p["train_steps"]).all()
    assert (models.steps - p["train_steps"] < np.ceil(models.n_train / p["batch_size"])).all()
    assert len(res["sigmas"]) == models.n_params.sum() and (res["sigmas"].sigma > 0).all()
    text = res["summary"]
    assert all(f"**{d}**" in text for d in curves.dataset.unique())


def test_epochs_for_a_fixed_number_of_steps_by_hand():
    # Wine: 133 rows, batch 128 -> 2 steps per epoch; 1600 steps = 800 epochs
    assert LB.epochs_for(133, 128, 1600) == (800, 1600)
    # MNIST subset: 10000 rows -> 79 steps per epoch; 1600 steps need 21 epochs = 1659 steps
    assert LB.epochs_for(10000, 128, 1600) == (21, 1659)
    assert LB.epochs_for(10, 128, 1) == (1, 1)


def test_sigma_summary_by_hand():
    # every sigma equal: mu^2/sigma^2 is a monotone function of |mu| -> rank correlation exactly 1
    p, ds, bayes, det = _fitted()
    with torch.no_grad():
        for layer in bayes:
            if hasattr(layer, "weight_rho"):
                layer.weight_rho.fill_(-3.0)
                layer.bias_rho.fill_(-3.0)
    out = LB.sigma_summary(bayes, det)
    sig = float(torch.nn.functional.softplus(torch.tensor(-3.0)))
    assert out["sigma_min"] == pytest.approx(sig) and out["sigma_max"] == pytest.approx(sig)
    assert out["sigma_spread"] == pytest.approx(1.0)
    assert out["rank_corr_var_mag"] == pytest.approx(1.0)
    # one sigma per parameter, in the order of the deterministic network's parameters
    assert len(LB.posterior_sigmas(bayes)) == n_params(det)


def test_bad_parameters_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="mnist_pool"):
        LB.check_params({**SMOKE, "mnist_pool": 5})
    with pytest.raises(ValueError, match="from 0 to 1"):
        LB.check_params({**SMOKE, "fractions": [0.0, 0.5]})
    with pytest.raises(ValueError, match="unknown data set"):
        LB.load_task("cifar", seed=0, n_train=10, n_test=10, mnist_pool=4)


def test_rules_across_parameters_are_refused_in_resolve():
    from paramspace.reports import ProfileError

    for fr in ([0.0, 0.5], [0.1, 1.0]):
        with pytest.raises(ProfileError, match="compression_leaderboard: fractions") as exc:
            reports.resolve("compression_leaderboard", "smoke", {"fractions": fr})
        assert "from 0 to 1" in str(exc.value)
    # the rule itself (also the ones a single value's check already refuses)
    with pytest.raises(ValueError, match="hidden must be >= 2"):
        LB.check_params({**SMOKE, "hidden": 1})
    assert reports.resolve("compression_leaderboard", "smoke", {"fractions": [0.0, 0.3, 1.0]})["fractions"][1] == 0.3


def test_plan_is_one_json_run_per_dataset_and_seed():
    import json

    P = reports.resolve("compression_leaderboard", "book", {"seed": 3, "n_seeds": 2})
    runs = LB.plan(P)
    assert [(r["dataset"], r["seed"]) for r in runs] == [(d, 3 + s) for d in P["datasets"] for s in range(2)]
    assert json.loads(json.dumps(runs)) == runs
    assert all(r["cpu_threads"] == P["cpu_threads"] and r["fractions"] == P["fractions"] for r in runs)
