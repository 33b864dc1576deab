import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from paramspace import data as D
from paramspace.claims import VERDICTS
from paramspace.neurons import linear_indices, neuron_params, teacher_answers
from paramspace.reports import ProfileError, resolve
from paramspace.reports import metric_analysis as M


def test_hapt_windows_are_consecutive_samples_and_split_by_subject():
    ds = D.hapt_windows(6, 4, stride=50, seed=0)
    assert ds.X_train.shape[1] == 6 and ds.y_train.shape[1] == 4 and ds.task == "regression"
    assert not set(ds.extra["train_users"]) & set(ds.extra["test_users"])
    assert len(ds.extra["test_users"]) == 9  # 30% of 30 subjects
    seg = ds.extra["test_segments"][0]
    assert np.allclose(ds.X_test[0].numpy(), seg[0:6], atol=1e-6)
    assert np.allclose(ds.y_test[0].numpy(), seg[6:10], atol=1e-6)
    assert np.allclose(ds.X_test[1].numpy(), seg[50:56], atol=1e-6)  # the stride
    tr = torch.cat([ds.X_train, ds.y_train], 1)
    assert abs(float(tr.mean())) < 0.1 and abs(float(tr.std()) - 1) < 0.1  # standardised with training data


def test_recover_predicts_each_block_from_the_samples_before_it():
    # a "network" that copies its input window: the recovery is the truth delayed by one block
    net = nn.Sequential(nn.Linear(5, 5))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(5))
        net[0].bias.zero_()
    sig = np.arange(23.0)
    rec = M.recover(net, sig, 5, 5)
    assert np.isnan(rec[:5]).all() and np.isnan(rec[20:]).all()
    assert np.allclose(rec[5:20], sig[0:15])


def test_circle_stats_of_points_on_a_circle():
    t = np.linspace(0, 4 * np.pi, 200, endpoint=False)  # twice around
    means = np.c_[3 * np.cos(t), 3 * np.sin(t), np.zeros_like(t), np.ones_like(t)]
    c = M.circle_stats(means)
    assert c["var2"] == pytest.approx(1.0) and c["radius_cv"] == pytest.approx(0.0, abs=1e-12)
    assert c["turns"] == pytest.approx(2.0 * 199 / 200)


def test_half_k_and_sweep_grid():
    # 4 -> 32 -> 3: 259 parameters; k neurons: 8k + 3 <= 129.5 -> k = 15
    assert M.half_k(4, 32, 3, 0.5, False) == 15
    params = resolve("metric_analysis", "book")
    ds = D.load_iris(seed=0)
    ks = M.sweep_ks("iris", ds, M.task_spec("iris", params), params)
    assert 15 in ks and ks[-1] == params["iris_hidden"] and ks == sorted(ks)


def _hand_made_curves():
    rows = []
    for d, gain, ari in (("mnist", 0.1, 0.5), ("iris", 0.0, 1.0), ("hapt", -0.1, 0.7)):
        for s in range(3):
            for m in ("euclidean", "w2"):
                for f in (0.0, 0.5, 1.0):
                    bump = 0.0 if d == "iris" else 0.001 * s  # Iris: W2 gives the same partition, the same curve
                    q = f + (gain * f * (1 - f) * 4 + bump if m == "w2" else 0.0)
                    k = int(10 * f) + 1
                    rows.append(dict(dataset=d, seed=s, metric=m, k=k, param_fraction=f, n_params=int(100 * f),
                                     quality=q, ari=1.0 if k in (1, 11) else ari))
    return pd.DataFrame(rows)


def test_auc_table_and_claims_on_hand_made_curves():
    curves = _hand_made_curves()
    auc = M.auc_table(curves).pivot_table(index=["dataset", "seed"], columns="metric", values="auc")
    assert np.allclose(auc.loc["iris"]["euclidean"], 0.5)  # the line q = f
    # w2 on mnist: + 0.1 * 4 f (1 - f) -> at f = 0.5 adds 0.1; trapezoid area + 0.05; plus 0.001 s
    assert np.allclose(auc.loc["mnist"]["w2"] - auc.loc["mnist"]["euclidean"], 0.05 + 0.001 * np.arange(3))
    params = dict(resolve("metric_analysis", "smoke"), hapt_claim_k=1, hapt_window=20)
    ring = pd.DataFrame(dict(seed=[0, 1, 2], deviation=[0.1, 0.12, 0.08], var2=0.9, turns=2.0,
                             quality=[0.8, 0.8, 0.8], quality_k=[0.75, 0.74, 0.76]))
    comp = dict(median_sd={"bootstrap": 0.1, "bayes": 0.01, "sandwich": 0.02},
                deviation={"bootstrap": 0.1, "bayes": 0.3, "sandwich": 0.1})
    ledger = M.claims(curves, params, ring=ring, comp=comp)
    assert all(c.verdict in VERDICTS for c in ledger)
    assert all(c.deck for c in ledger if c.kind == "report") and any(c.kind == "ours" for c in ledger)
    by = {c.claim.split(":")[0] + (" W2" if ": W2 clustering is no worse" in c.claim else ""): c for c in ledger}
    dims = M.neuron_dims(params)
    assert dims == M.DECK_DIMS  # the deck's neuron dimensions in every profile: 8 / 4 / 10
    assert by[f"MNIST (d = {dims['mnist']}) W2"].verdict == "reproduced"  # +0.05 + tol, clearly above 0
    assert "Rand index of the two partitions 0.50" in by[f"MNIST (d = {dims['mnist']}) W2"].our_value
    assert by[f"Accelerometer (d = {dims['hapt']}) W2"].verdict == "not reproduced"  # -0.05 + tol
    # Iris: the same partition at every k, equal curves: passes only through the tolerance
    iris = by[f"Iris (d = {dims['iris']}) W2"]
    assert iris.verdict == "indistinguishable" and iris.same and iris.counted
    small = next(c for c in ledger if c.claim.startswith("Covariance helps"))
    assert "Iris" in small.claim and small.verdict == "not reproduced" and small.tolerance == 0
    trend = next(c for c in ledger if c.kind == "ours")
    # Iris gain 0 minus accelerometer gain -0.05 + 0.001 s: +0.05 - 0.001 s per seed
    assert trend.verdict == "reproduced" and np.allclose(trend.evidence, 0.05 - 0.001 * np.arange(3))
    assert by["Iris"].verdict == "not reproduced"  # at f = 0.5 (k = 6) accuracy 0.5 < 0.9
    circle = next(c for c in ledger if "lie on a circle" in c.claim and "every estimator" not in c.claim)
    assert circle.verdict == "reproduced" and np.allclose(circle.evidence, [0.15, 0.13, 0.17])
    reduce = next(c for c in ledger if "reduce to" in c.claim)
    assert reduce.verdict == "not reproduced" and np.allclose(reduce.evidence, [-0.03, -0.04, -0.02])
    scale = next(c for c in ledger if "different numbers" in c.claim)
    assert scale.verdict == "reproduced" and "ratio 10.0" in scale.our_value
    shared = next(c for c in ledger if "every estimator" in c.claim)
    assert shared.verdict == "not reproduced"  # the Bayesian means deviate 0.3 > 0.25
    much = next(c for c in ledger if c.rule == "exact" and "much better" in c.claim)
    assert much.verdict == "reproduced" and "MNIST" in much.our_value  # 0.051 > 0.02 with CI above 0
    models = pd.DataFrame([dict(dataset=d, dim=dims[d], cov_sd=0.1, mean_spread=1.0, clustered_quality=1.0)
                           for d in ("mnist", "iris", "hapt")])
    md = M.summary_markdown(curves, models, ledger, params)
    assert "W2 better on 3" in md and "**Verdicts on the report's claims**" in md and "indistinguishable" in md


def test_circle_deviation_closed_form():
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    on = np.c_[2 * np.cos(t), 2 * np.sin(t), np.zeros_like(t)]
    assert M.circle_deviation(on) == pytest.approx(0.0, abs=1e-12)
    # radii alternating 2 (1 +- 0.1): the mean radius is 2, every point 0.2 off it -> 0.1
    r = 2 * (1 + 0.1 * (-1) ** np.arange(40))
    assert M.circle_deviation(np.c_[r * np.cos(t), r * np.sin(t), np.zeros_like(t)]) == pytest.approx(0.1)
    # out of the plane by +-0.1 (alternating, so the centroid stays at 0): sqrt(0.1^2) / 2 = 0.05
    z = 0.1 * (-1) ** np.arange(40)
    assert M.circle_deviation(np.c_[2 * np.cos(t), 2 * np.sin(t), z]) == pytest.approx(0.05)


def test_protocol_names_deviations_and_the_cluster_cov_parameter():
    book = resolve("metric_analysis", "book")
    assert book["cluster_cov"] == "bootstrap" and M.neuron_dims(book) == M.DECK_DIMS
    md = M.protocol_markdown(book)
    assert md.startswith("| item |") and "**deviation**" in md and "HAPT" in md
    assert "**deviation**: not the report's estimator" not in md
    assert "**deviation**: not the report's estimator" in M.protocol_markdown(dict(book, cluster_cov="student"))
    with pytest.raises(ProfileError, match="bootstrap"):
        resolve("metric_analysis", "smoke", dict(cluster_cov="sandwich"))
    ds = M.load_task("iris", book, 0)
    assert ds.n_features == book["iris_pca"] and M.task_spec("hapt", book)["widths"] == [book["hapt_curve_hidden"]]
    assert M.task_spec("hapt", book, hidden=book["hapt_hidden"])["widths"] == [3]


def _curve_runs(params):
    return [r for r in M.plan(params) if r["study"] in ("curves", "contrast")]


def test_student_prior_is_the_teacher_posterior_and_tiny_run():
    base = dict(datasets=["iris"], n_seeds=1, iris_hidden=4, iris_epochs=3, iris_ks=[1, 2], contrast_datasets=[])
    outs = {}
    for mode in ("bootstrap", "student"):
        params = resolve("metric_analysis", "smoke", dict(base, cluster_cov=mode))
        runs = _curve_runs(params)
        assert [(r["study"], r["task"], r["seed"], r["cluster_cov"]) for r in runs] == [("curves", "iris", 0, mode)]
        out = outs[mode] = M.curve_frames([M.execute(r)["result"] for r in runs])
        curves, models = out["curves"], out["models"]
        assert set(curves.metric) == {"euclidean", "w2"} and sorted(set(curves.k)) == [1, 2, 4]
        full = curves[curves.k == 4]
        # k = width: nothing is merged, both metrics give the clustered network's quality and parameter count,
        # and the same (trivial) partition; so does k = 1
        assert np.allclose(full.quality, models.clustered_quality.iloc[0]) and (full.param_fraction == 1.0).all()
        assert (curves[curves.k.isin([1, 4])].ari == 1.0).all()
        k1 = curves[curves.k == 1].n_params.iloc[0]
        assert models.n_params.iloc[0] - k1 == 3 * (params["iris_pca"] + 1 + 3)
        if mode == "bootstrap":  # the trained network itself is clustered
            assert models.clustered_quality.iloc[0] == models.teacher_quality.iloc[0]
    tab = M.contrast_table(outs["bootstrap"], outs["student"])
    assert list(tab.covariances) == ["bootstrap", "student"] and tab["ARI (mean)"].between(-1, 1).all()
    ari2 = outs["student"]["curves"].query("k == 2 and metric == 'w2'").ari.iloc[0]
    assert tab.loc[1, "ARI (mean)"] == pytest.approx(ari2)  # k = 2 is the only k with 1 < k < 4
    # the contrast study: the same runs with the student's covariances; none without contrast_datasets
    assert not any(r["study"] == "contrast" for r in M.plan(params))
    assert len(M.curve_frames([])["curves"]) == 0
    with_contrast = M.plan(dict(params, cluster_cov="bootstrap", contrast_datasets=["iris"]))
    contrast = [r for r in with_contrast if r["study"] == "contrast"]
    assert len(contrast) == 1 and contrast[0]["cluster_cov"] == "student"
    # the contrast run is the student run above: the same numbers
    again = M.curve_frames([M.execute(contrast[0])["result"]])
    pd.testing.assert_frame_equal(again["curves"].drop(columns="seconds"),
                                  outs["student"]["curves"].drop(columns="seconds"))
    # Algorithm 1: the student's prior means are the teacher's neurons
    ds = M.load_task("iris", params, 0)
    spec = M.task_spec("iris", params)
    teacher = M.new_model(ds, spec, 0)
    covs = {li: np.stack([np.eye(neuron_params(teacher, li).shape[1])] * teacher[li].out_features)
            for li in linear_indices(teacher)}
    student, _ = M.fit_student(teacher, covs, ds, spec, params, 0)
    for li in linear_indices(teacher):
        assert np.allclose(student[li].prior_mean.numpy(), neuron_params(teacher, li), atol=1e-6)
        L = student[li].prior_scale_tril.double().numpy()
        assert np.allclose(L @ np.swapaxes(L, 1, 2), covs[li] * (1 + params["prior_jitter"]), atol=1e-6)
    ans = teacher_answers(teacher, ds)
    assert torch.equal(ans.y_train, teacher(ds.X_train).argmax(1))


def test_plan_has_one_run_per_study_seed_and_task_and_runs_are_json():
    import json

    P = resolve("metric_analysis", "smoke", dict(n_seeds=3, seed=5, datasets=["iris", "mnist"],
                                                 contrast_datasets=["hapt"]))
    runs = M.plan(P)
    json.dumps(runs)  # plain JSON-able dicts
    assert [(r["study"], r["task"], r["seed"]) for r in runs] == (
        [("estimators", "hapt", 5)] + [("ring", "hapt", s) for s in (5, 6, 7)]
        + [("curves", t, s) for t in ("iris", "mnist") for s in (5, 6, 7)]
        + [("contrast", "hapt", s) for s in (5, 6, 7)])
    assert {r["cluster_cov"] for r in runs if r["study"] == "curves"} == {P["cluster_cov"]}
    assert {r["cluster_cov"] for r in runs if r["study"] == "contrast"} == {"student"}
    # every run carries the parameters it reads, copied from P
    assert all(r[k] == P[k] for r in runs for k in M.RUN_KEYS)
    with pytest.raises(ValueError, match="study"):
        M.execute(dict(runs[0], study="nonsense"))


def test_ring_run_and_summarize_on_a_tiny_plan():
    P = resolve("metric_analysis", "smoke", dict(datasets=["iris"], n_seeds=1, iris_hidden=4, iris_epochs=2,
                                                 iris_ks=[2], hapt_window=8, hapt_stride=200, hapt_epochs=1,
                                                 hapt_claim_k=4, n_ellipses=4, contrast_datasets=["iris"],
                                                 hapt_small_in=4, hapt_small_out=6))
    results = [M.execute(r) for r in M.plan(P)]
    assert [r["study"] for r in results] == ["estimators", "ring", "curves", "contrast"]
    ring = results[1]["result"]
    assert ring["seed"] == 0 and ring["deviation"] >= 0 and 0 <= ring["var2"] <= 1
    # a run seeds itself: run again after the others (another process's state), the same numbers
    assert M.execute(M.plan(P)[1])["result"] == ring
    comp = results[0]["result"]
    assert set(comp["means"]) == set(M.ESTIMATORS) and comp["covs"]["bootstrap"].shape == (8, 4, 4)
    assert not any(isinstance(v, nn.Module) for v in comp.values())  # no live networks in a result
    S = M.summarize(P, results)
    assert len(S["ring"]) == 1 and set(S["curves"].dataset) == {"iris"} and len(S["models"]) == 1
    assert list(S["contrast"]["models"].cluster_cov) == ["student"]
    assert {"protocol", "models", "auc", "ari", "estimators", "circle", "contrast"} <= set(S["tables"])
    assert all(c.verdict in VERDICTS for c in S["ledger"]) and "**Verdicts" in S["summary"]
    assert list(S["tables"]["ari"].k) == [1, 2, 4]


@pytest.mark.parametrize("overrides,match", [
    (dict(hapt_window=8, hapt_claim_k=9, n_ellipses=4), "hapt_claim_k"),
    (dict(hapt_window=8, hapt_claim_k=8, n_ellipses=9), "n_ellipses"),
    (dict(hapt_hidden=3, rank=5), "rank"),
])
def test_rules_across_parameters_raise_in_resolve(overrides, match):
    with pytest.raises(ProfileError, match=match):
        resolve("metric_analysis", "smoke", overrides)
    # at the limits the rules pass
    ok = resolve("metric_analysis", "smoke", dict(hapt_window=8, hapt_claim_k=8, n_ellipses=8, hapt_hidden=3, rank=4))
    assert ok["hapt_claim_k"] == ok["hapt_window"] == 8 and ok["rank"] == 4


def test_tables_of_the_page_on_hand_made_curves():
    curves = _hand_made_curves()
    auc = M.auc_summary(curves)
    assert list(auc.index) == ["mnist", "iris", "hapt"]
    assert auc.loc["iris", "euclidean area (mean)"] == pytest.approx(0.5)
    assert auc.loc["mnist", "w2 area (mean)"] == pytest.approx(0.5 + 0.05 + 0.001, abs=1e-4)
    ari = M.ari_table(curves)
    assert list(ari.k) == [1, 6, 11] and ari.set_index("k").loc[6, "mnist"] == pytest.approx(0.5)
    models = pd.DataFrame([dict(dataset=d, seed=s, n_params=10, inputs=4, neurons=8, dim=5, clustered_quality=q,
                                cov_sd=0.1, mean_spread=1.0, total_s=1.0)
                           for d, q in (("iris", 0.9), ("hapt", 0.5)) for s in range(2)])
    tab = M.models_table(models)
    assert list(tab.index) == ["iris", "hapt"] and tab.loc["iris", "quality"] == pytest.approx(0.9)


def test_bootstrap_runs_equal_separate_fits_on_the_resamples():
    """The batched bootstrap family equals the report's former loop: copy b drawn by its own
    ``rng.integers`` call (in order), trained by ``fit`` with seed ``seed + 1000 + b``, then aligned."""
    import copy
    from dataclasses import replace

    from paramspace.neurons import align_model

    P = resolve("metric_analysis", "smoke", dict(iris_hidden=5, iris_epochs=3, n_bootstrap=3))
    ds, spec, seed = M.load_task("iris", P, 0), M.task_spec("iris", P), 0
    init = M.new_model(ds, spec, seed)
    teacher = copy.deepcopy(init)
    M.fit(teacher, ds, spec, P, seed)
    runs, moved = M.bootstrap_runs(init, teacher, ds, spec, P, seed, P["n_bootstrap"])
    rng, n = np.random.default_rng([seed, 1]), len(ds.X_train)
    ref, ref_moved, total = [], 0, 0
    for b in range(P["n_bootstrap"]):
        idx = torch.as_tensor(rng.integers(0, n, n))
        m = copy.deepcopy(init)
        M.fit(m, replace(ds, X_train=ds.X_train[idx], y_train=ds.y_train[idx]), spec, P, seed + 1000 + b)
        aligned, perms, signs = align_model(teacher, m, sign_flip=spec["sign_flip"])
        ref_moved += sum(int(np.sum((p != np.arange(len(p))) | (s < 0))) for p, s in zip(perms, signs))
        total += sum(len(p) for p in perms)
        ref.append(aligned)
    assert len(runs) == P["n_bootstrap"] and moved == ref_moved / total
    for a, r in zip(runs, ref):
        assert not a.training and all(p.device.type == "cpu" for p in a.parameters())
        for p, q in zip(a.parameters(), r.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(runs[0][0].weight, runs[1][0].weight)  # the copies differ
