"""reports/variational_complexity (report 2): rules across parameters, the hypernetworks from parameters,
plan / execute / summarize, tables and claims."""

import json

import pandas as pd
import pytest
import torch

from paramspace import hypernet as H, variational as V
from paramspace.reports import ProfileError, resolve, run_all
from paramspace.reports import variational_complexity as vc

SMALL = dict(hidden=[6], prior_variance=0.1, init_sigma=0.05, local_reparam=True)


def _base(seed=0, **kw):
    torch.manual_seed(seed)
    return vc.bayes_mlp({**SMALL, **kw}, in_dim=5, out_dim=2)


# --- parameters -------------------------------------------------------------------------------


def test_check_params_cross_checks_through_resolve():
    P = resolve("variational_complexity", "smoke")
    vc.check_params(P)
    for bad in [dict(claim_fraction=0.7), dict(lambda_min=200.0), dict(fractions=[0.1, 0.8]),
                dict(prior_variances=[1.0, 10.0]), dict(sweep_lambda=0.5), dict(lambdas=[0.0, 0.05]),
                dict(lambda_min=2.0, lambda_max=1.0)]:
        with pytest.raises(ProfileError):
            resolve("variational_complexity", "smoke", bad)
        with pytest.raises(ProfileError):
            vc.check_params({**P, **bad})
    # the same rules let a consistent change through
    Q = resolve("variational_complexity", "smoke", dict(prior_variance=1.0, sweep_lambda=100.0, claim_fraction=0.5))
    assert Q["prior_variance"] == 1.0 and vc.hyper_lambdas(Q) == [0.1, 1.0, 100.0]


def test_bad_protocol_values_are_refused_before_any_compute():
    for bad in [dict(optimizer="rmsprop"), dict(pruning_ranking="random"), dict(input_scaling="zscore"),
                dict(clip_mode="both"), dict(grad_clip=-1.0), dict(linear_init="ones"), dict(lowrank_features="gelu")]:
        with pytest.raises(ProfileError):
            resolve("variational_complexity", "smoke", bad)


def test_smoke_experiment_tables():
    P = resolve("variational_complexity", "smoke", {"n_seeds": 2, "n_train": 120, "n_test": 60})
    r = run_all("variational_complexity", P)
    lam_h = vc.hyper_lambdas(P)
    cur = r["curves"]
    assert set(cur.method) == set(vc.METHODS) and set(cur.criterion) == set(vc.CRITERIA)
    assert set(cur[cur.method != "separate"].criterion) == {"density"}
    assert sorted(cur[cur.method == "separate"].lam.unique()) == P["lambdas"]
    assert sorted(cur[cur.method == "linear"].lam.unique()) == lam_h
    assert set(cur[cur.criterion == "magnitude"].stage) == {"one-shot"}  # fine-tuning only for density
    assert len(r["grid"]) == 2 * 2 * P["n_lambda_grid"] * 2
    assert len(r["grid_models"]) == 2 * 2 * P["n_lambda_grid"]
    assert set(r["timing"].method) == set(vc.METHODS) and (r["timing"].seconds > 0).all()
    # counted work: 120 examples in batches of 64 -> 2 steps per epoch
    t = r["timing"]
    assert (t[t.method == "separate"].steps == 2 * P["epochs"]).all()
    assert (t[t.method == "linear"].passes == 2 * P["hyper_epochs"] * P["lambdas_per_batch"]).all()
    assert sorted(r["prior_models"].prior_variance.unique()) == sorted(P["prior_variances"])
    assert r["traces"].groupby(["seed", "lam"]).step.max().eq(2 * P["epochs"]).all()
    ledger = r["claims"]
    assert ledger == vc.claims(r, P)  # summarize's claims are those of its frames
    n_report = len(P["lambdas"]) + 1 + 2 + 2 + 2
    assert len(ledger) == n_report + 3
    assert sum(c.kind == "report" for c in ledger) == n_report
    assert all(c.deck for c in ledger if c.kind == "report")
    assert not any(c.timing for c in ledger)  # no verdict rests on wall time
    md = r["discussion"]
    assert md == vc.discussion_markdown(r, ledger, P)
    assert "λ = 0:" in md and "Magnitude pruning" in md
    assert set(r["tables"]) == {"protocol", "models", "density_vs_magnitude", "sensitivity", "prior", "cost", "timing"}
    for table in r["tables"].values():
        md = vc.table_markdown(table)
        lines = md.splitlines()
        assert md.startswith("|") and len(lines) == len(table) + 2
        ncol = lines[0].replace("\\|", "").count("|")  # escaped pipes inside a header do not split it
        assert all(line.replace("\\|", "").count("|") == ncol for line in lines)


# --- the network and the hypernetworks from the parameters ---------------------------------------


def test_bayes_mlp_from_params():
    m = _base(hidden=[4], prior_variance=0.25, init_sigma=0.1)
    layers = V.bayes_layers(m)
    assert [(l.in_features, l.out_features) for l in layers] == [(5, 4), (4, 2)]
    assert all(l.prior_sigma == pytest.approx(0.5) and l.local_reparam for l in layers)  # sqrt(0.25)
    torch.testing.assert_close(layers[0].weight_sigma, torch.full((4, 5), 0.1))
    assert vc.prior_sigma({"prior_variance": 0.04}) == pytest.approx(0.2)


def test_make_hyper_from_params():
    base, other = _base(seed=0), _base(seed=1)
    with pytest.raises(ValueError):
        vc.make_hyper("cubic", base, {"lambda_min": 0.1, "lambda_max": 1.0})
    P = {"lambda_min": 0.01, "lambda_max": 100.0, "linear_init": "endpoints"}
    with pytest.raises(ValueError):
        vc.make_hyper("linear", base, P)  # endpoints need a second network
    h = vc.make_hyper("linear", base, P, other=other)
    assert isinstance(h, H.LinearHyper)
    for n, p in other.named_parameters():
        torch.testing.assert_close(h(100.0)[n], p.detach(), rtol=0, atol=1e-6)
    flat = vc.make_hyper("linear", base, {**P, "linear_init": "zero"})
    assert all(torch.equal(v, torch.zeros_like(v)) for v in flat.b2.values())
    Q = {"lambda_min": 0.01, "lambda_max": 100.0, "rank": 2, "embed_dim": 50, "lowrank_features": "relu"}
    lr = vc.make_hyper("lowrank", base, Q, seed=3)
    assert isinstance(lr, H.LowRankHyper) and lr.feature_kind == "relu" and lr.rank == 2 and lr.embed_dim == 50
    again = vc.make_hyper("lowrank", base, Q, seed=3)  # seeded: the same initialisation
    assert all(torch.equal(a, b) for a, b in zip(lr.parameters(), again.parameters()))


# --- plan / execute / summarize ------------------------------------------------------------------


def test_plan_one_run_per_seed_and_model():
    P = resolve("variational_complexity", "smoke", {"seed": 5, "n_seeds": 2})
    runs = vc.plan(P)
    json.dumps(runs)  # plain, JSON-able
    per_seed = len(P["lambdas"]) + 2 + len(P["prior_variances"]) - 1
    assert len(runs) == 2 * per_seed
    assert [r["seed"] for r in runs] == [5] * per_seed + [6] * per_seed
    sep = [r for r in runs if r["kind"] == "separate"]
    assert [r["lam"] for r in sep] == 2 * P["lambdas"]
    assert [r["lam"] for r in sep if r["sweep"]] == 2 * [P["sweep_lambda"]]
    assert all(r["eval_every_steps"] == P["eval_every_steps"] for r in sep)
    hyp = [r for r in runs if r["kind"] in ("linear", "lowrank")]
    assert [r["kind"] for r in hyp] == ["linear", "lowrank"] * 2
    assert all(r["lambda_min"] == P["lambda_min"] and r["hyper_epochs"] == P["hyper_epochs"] for r in hyp)
    prior = [r for r in runs if r["kind"] == "prior"]  # the sweep less the run's own prior (a separate model)
    assert [r["prior_variance"] for r in prior] == 2 * [v for v in P["prior_variances"] if v != P["prior_variance"]]
    assert all(r["lam"] == P["sweep_lambda"] for r in prior)
    assert all(r["cpu_threads"] == P["cpu_threads"] and r["device"] == P["device"] for r in runs)
    assert not any("n_seeds" in r or "profile" in r for r in runs)  # a run is its own, not the report's


def test_frames_order_the_prior_sweep_like_prior_variances():
    P = {"seed": 0, "n_seeds": 2, "prior_variances": [0.01, 0.1, 1.0]}
    row = lambda s, pv: dict(seed=s, prior_variance=pv, accuracy=pv + s)  # noqa: E731
    # plan order: per seed, the separate model (the reference 0.1) before the other variances
    results = [{"curves": [dict(seed=s, lam=1.0)], "prior_models": [row(s, 0.1)]} if i == 0 else
               {"prior_models": [row(s, pv)]} for s in (0, 1) for i, pv in enumerate((0.1, 0.01, 1.0))]
    f = vc.frames(P, results)
    assert list(zip(f["prior_models"].seed, f["prior_models"].prior_variance)) == [
        (0, 0.01), (0, 0.1), (0, 1.0), (1, 0.01), (1, 0.1), (1, 1.0)]
    assert len(f["curves"]) == 2 and f["grid"].empty and set(f) == set(vc.FRAMES)


def test_split_runs_give_the_numbers_of_one_loop():
    """The prior sweep's reference row comes from the separate model at sweep_lambda; a run of kind
    "prior" at the run's own prior variance retrains that same model (same seeding) and must give the
    same numbers, and a run executed twice gives the same numbers (everything it reads is in it)."""
    P = resolve("variational_complexity", "smoke", {"n_seeds": 1, "n_train": 120, "n_test": 60,
                                                     "lambdas": [0.0, 1.0], "sweep_lambda": 1.0})
    runs = vc.plan(P)
    sep = next(r for r in runs if r["kind"] == "separate" and r["sweep"])
    threads = torch.get_num_threads()
    a = vc.execute(sep)
    assert torch.get_num_threads() == threads  # execute sets its own thread count and restores it
    pickled = pd.DataFrame(a["curves"])
    assert set(pickled.criterion) == {"density", "magnitude"} and len(a["models"]) == 1
    ref = vc.execute(dict(next(r for r in runs if r["kind"] == "prior"), prior_variance=P["prior_variance"]))
    assert ref["prior_models"] == a["prior_models"] and ref["prior_curves"] == a["prior_curves"]
    b = vc.execute(sep)
    assert b["curves"] == a["curves"] and b["traces"] == a["traces"]
    assert [{k: v for k, v in m.items()} for m in b["models"]] == a["models"]


# --- counted cost and lambda-sensitivity, on hand-made results ---------------------------------


def _hand_results():
    import pandas as pd

    P = {"lambdas": [0.0, 0.1, 10.0], "lambda_min": 0.1, "lambda_max": 10.0, "lambdas_per_batch": 2}
    timing = pd.DataFrame([
        dict(method="separate", seed=0, lam=0.0, passes=100), dict(method="separate", seed=0, lam=0.1, passes=100),
        dict(method="separate", seed=0, lam=10.0, passes=100),
        dict(method="linear", seed=0, lam=float("nan"), passes=200),
        dict(method="lowrank", seed=0, lam=float("nan"), passes=200)])
    traces = pd.DataFrame([dict(seed=0, lam=0.1, step=s, accuracy=a) for s, a in ((50, 0.8), (100, 0.9))]
                          + [dict(seed=0, lam=10.0, step=s, accuracy=a) for s, a in ((50, 0.6), (100, 0.7))])
    models = pd.DataFrame([
        dict(method="separate", seed=0, lam=0.1, accuracy=0.9, kl_per_param=1.0, median_sigma=0.01),
        dict(method="separate", seed=0, lam=10.0, accuracy=0.7, kl_per_param=0.01, median_sigma=0.1),
        dict(method="linear", seed=0, lam=0.1, accuracy=0.75, kl_per_param=1.0, median_sigma=0.05),
        dict(method="linear", seed=0, lam=10.0, accuracy=0.8, kl_per_param=1.0, median_sigma=0.05),
        dict(method="lowrank", seed=0, lam=0.1, accuracy=0.95, kl_per_param=1.0, median_sigma=0.01),
        dict(method="lowrank", seed=0, lam=10.0, accuracy=0.65, kl_per_param=0.1, median_sigma=0.1)])
    return dict(timing=timing, traces=traces, models=models), P


def test_cost_to_quality_counts_passes_by_hand():
    r, P = _hand_results()
    c = vc.cost_to_quality(r, P).set_index("method")
    # linear: 0.75 reached at step 50 (lambda 0.1); 0.8 never at lambda 10 -> full budget 100
    assert c.loc["linear", "separate_to_quality_passes"] == 150 and c.loc["linear", "censored"] == 1
    # low-rank: 0.95 never at lambda 0.1 (100), 0.65 at step 100 (lambda 10)
    assert c.loc["lowrank", "separate_to_quality_passes"] == 200 and c.loc["lowrank", "censored"] == 1
    assert (c.hyper_passes == 200).all() and (c.separate_full_passes == 200).all()


def test_sensitivity_by_hand():
    r, P = _hand_results()
    s = vc.sensitivity(r, P).set_index("method")
    assert s.loc["separate", "kl_decades"] == pytest.approx(2.0)
    assert s.loc["separate", "sigma_decades"] == pytest.approx(1.0)
    assert s.loc["linear", "kl_decades"] == pytest.approx(0.0) and s.loc["linear", "sigma_decades"] == 0.0
    assert s.loc["lowrank", "kl_decades"] == pytest.approx(1.0)
    assert s.loc["separate", "acc_range_pp"] == pytest.approx(20.0)
