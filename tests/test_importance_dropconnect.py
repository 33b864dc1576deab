"""Report 3, importance_dropconnect: the rules across parameters, plan/execute/summarize, claims, tables."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from paramspace import data as D
from paramspace import vision as V
from paramspace.claims import VERDICTS, verdict_paired
from paramspace.reports import ProfileError, resolve, run_all
from paramspace.reports import importance_dropconnect as I


def _toy_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n + 40, 1, 28, 28, generator=g)
    y = (X[:, 0, :14].mean((1, 2)) > X[:, 0, 14:].mean((1, 2))).long()
    return D.ImageTensors("toy", X[:n], y[:n], X[n:], y[n:])



def test_check_params():
    P = resolve("importance_dropconnect", "smoke")
    assert I.check_params(P) is P
    with pytest.raises(ProfileError, match="min_keep"):
        I.check_params({**P, "min_keep": 0.9, "drop_rate": 0.3})
    with pytest.raises(ProfileError, match="early_epochs"):
        I.check_params({**P, "early_epochs": P["epochs"]})
    with pytest.raises(ProfileError, match="grid_min_keep"):
        I.check_params({**P, "grid_min_keep": [0.5, 0.8], "drop_rate": 0.3})
    with pytest.raises(ProfileError, match="collapse_seeds"):
        I.check_params({**P, "collapse_seeds": P["n_seeds"] + 1})
    with pytest.raises(ProfileError, match="grid_seeds"):
        I.check_params({**P, "grid_seeds": P["n_seeds"] + 1})
    with pytest.raises(ProfileError, match="importance_data"):
        resolve("importance_dropconnect", "smoke", {"importance_data": "halves"})
    with pytest.raises(ProfileError):
        resolve("importance_dropconnect", "smoke", {"grid_tau": [-1.0]})
    with pytest.raises(ProfileError, match="arch"):
        resolve("importance_dropconnect", "smoke", {"arch": "resnet101"})
    with pytest.raises(ProfileError, match="dataset"):
        resolve("importance_dropconnect", "smoke", {"dataset": "imagenet"})
    assert resolve("importance_dropconnect", "paper")["arch"] == "resnet18"
    assert resolve("importance_dropconnect", "paper")["dataset"] == "cifar10"


def _collapse_frame(shares_tau0, shares_tau, tau=1e-3, steps=10):
    """A collapse-check table: per seed two layers, the largest share at step 0 and at ``steps``."""
    rows = []
    for s, (a, b) in enumerate(zip(shares_tau0, shares_tau)):
        for t, v in ((0.0, a), (tau, b)):
            for layer, size in (("0.weight", 100), ("3.weight", 400)):
                rows.append(dict(tau=t, step=0, layer=layer, size=size, objective=1.0, max_share=1 / size,
                                 effective_fraction=1.0, seed=s))
                rows.append(dict(tau=t, step=steps, layer=layer, size=size, objective=0.5, max_share=v,
                                 effective_fraction=0.5, seed=s))
    return pd.DataFrame(rows)


def test_claims_follow_from_the_numbers():
    P = {**resolve("importance_dropconnect", "smoke"), "epochs": 4, "early_epochs": 2, "collapse_share": 0.5}
    rows = []
    for s in range(3):
        for m in I.METHODS:
            bonus = {"no_dropout": 0.0, "dropconnect": 0.0, "importance_dc": -0.01, "importance_dc_kl": 0.05}[m]
            for e in range(1, 5):
                acc = 0.5 + 0.1 * e + (bonus if e <= 2 else 0.0) + 0.001 * s - (0.03 if m == "no_dropout" and e == 4 else 0)
                tr = acc + (0.2 if m == "no_dropout" else 0.1)
                rows.append(dict(method=m, seed=s, epoch=e, test_acc=acc, train_acc=tr, test_loss=1 - acc,
                                 effective_fraction=(0.9 if m == "importance_dc_kl" else 0.01 + 0.001 * s)
                                 if m.startswith("importance") else np.nan,
                                 max_share=(0.01 if m == "importance_dc_kl" else 0.2 + 0.01 * s)
                                 if m.startswith("importance") else np.nan))
    curves = pd.DataFrame(rows)
    curves["gap_acc"] = curves["train_acc"] - curves["test_acc"]
    collapse = _collapse_frame([0.95, 0.99, 0.97], [0.01, 0.01, 0.01])
    ledger = I.claims(curves, P, collapse)
    by = {c.claim.split(" (")[0]: c for c in ledger}
    assert all(c.verdict in VERDICTS and c.verdict == verdict_paired(c.evidence) for c in ledger)
    # the deck's statements are kind "report" and say where they stand; everything else is ours
    report = [c for c in ledger if c.kind == "report"]
    assert len(report) == 4 and all(c.deck for c in report)
    assert all(c.kind == "ours" for c in ledger if "end of training" in c.claim or "gap" in c.claim)
    assert all(c.kind == "ours" for c in ledger if "not claimed" in c.report_value)
    early_kl = by["importance DropConnect + KL beats plain DropConnect early in training"]
    assert early_kl.kind == "report" and early_kl.evidence == pytest.approx([5.0] * 3)
    assert early_kl.verdict == "reproduced"
    assert by["importance DropConnect beats plain DropConnect early in training"].verdict == "not reproduced"
    late = by["importance DropConnect + KL beats plain DropConnect at the end of training"]
    assert late.kind == "ours" and late.evidence == pytest.approx([0.0] * 3) and late.verdict == "not reproduced"
    regime_loss, regime_acc = [c for c in ledger if c.claim.startswith("in this regime")]
    assert regime_acc.kind == "ours" and regime_acc.evidence == pytest.approx([3.0] * 3)  # DropConnect 3 pp above
    assert regime_loss.kind == "ours" and regime_loss.evidence == pytest.approx([0.03] * 3)  # loss 1 - acc: 0.03 below
    early_loss = [c for c in ledger if "early in training in test loss" in c.claim]
    assert [c.kind for c in early_loss] == ["ours", "ours"]
    assert early_loss[0].evidence == pytest.approx([0.05] * 3) and early_loss[1].evidence == pytest.approx([-0.01] * 3)
    assert I.short_label(early_loss[0])[0].startswith("early test loss")
    gap = [c for c in ledger if "gap" in c.claim]
    assert gap[0].evidence == pytest.approx([0.0] * 3, abs=1e-9)  # importance + KL vs DropConnect: same gap
    assert gap[1].evidence == pytest.approx([10.0] * 3)  # DropConnect vs no dropout: gaps 0.2 and 0.1
    spread = by["the KL regulariser keeps the importances spread out"]
    assert spread.kind == "report" and spread.verdict == "reproduced"
    # collapse of the converged mirror descent: largest share (mean over the two layers) minus 0.5
    conv = [c for c in ledger if c.claim.startswith("without KL, mirror descent converges")][0]
    assert conv.kind == "report" and conv.evidence == pytest.approx([0.45, 0.49, 0.47])
    assert conv.verdict == "reproduced"
    trained = [c for c in ledger if c.claim.startswith("without KL, the importances as trained")][0]
    assert trained.kind == "ours" and trained.evidence == pytest.approx([-0.3, -0.29, -0.28])
    assert trained.verdict == "not reproduced"
    assert len(I.claims(curves, P)) == len(ledger) - 1  # no collapse check, no row for it
    text = I.summary_markdown(ledger, curves, P)
    assert "reproduced" in text and "importance DropConnect + KL: early" in text and "(ours)" in text


def _toy_P(**kw):
    return {**resolve("importance_dropconnect", "smoke"), "n_seeds": 1, "epochs": 3, "early_epochs": 2, "grid_seeds": 1,
            "collapse_seeds": 1, "collapse_steps": 5, "drop_rate": 0.3, "min_keep": 0.5, "importance_tau": 1e-3,
            "grid_min_keep": [0.5, 0.7], "grid_tau": [0.0, 1e-2], "batch_size": 32, "width": 4, **kw}


def test_plan_runs_are_json_able_and_complete():
    import json

    P = resolve("importance_dropconnect", "smoke")
    runs = I.plan(P)
    assert json.loads(json.dumps(runs)) == runs
    main = [r for r in runs if r["kind"] == "main"]
    assert [(r["seed"], r["method"]) for r in main] == [(P["seed"] + s, m) for s in range(P["n_seeds"]) for m in I.METHODS]
    # the collapse check rides on the importance_dc runs of the first collapse_seeds seeds
    assert [r["seed"] for r in main if r["collapse"]] == [P["seed"] + s for s in range(P["collapse_seeds"])]
    assert all(r["method"] == "importance_dc" for r in main if r["collapse"])
    # smoke grid: min_keep [0.5, 0.7] x tau [0, 1e-3] on one seed; (0.5, 0) is the main run's importance_dc
    # (min_keep 0.5): reused; (0.5, 1e-3) differs from the main tau 1e-4, so it is trained
    grid = [r for r in runs if r["kind"] == "grid"]
    assert [(r["min_keep"], r["tau"], r["method"]) for r in grid] == [
        (0.5, 1e-3, "importance_dc_kl"), (0.7, 0.0, "importance_dc"), (0.7, 1e-3, "importance_dc_kl")]
    assert all(r["stop_after"] == P["early_epochs"] and r["train"]["min_keep"] == r["min_keep"]
               and r["train"]["importance_tau"] == r["tau"] for r in grid)
    assert len(runs) == 4 * P["n_seeds"] + 3


def test_summarize_checks_the_number_of_results():
    P = resolve("importance_dropconnect", "smoke")
    with pytest.raises(ValueError, match="expected"):
        I.summarize(P, [])


def test_sensitivity_cells_reuse_the_run_and_min_keep_at_one_minus_p_is_plain_dropconnect(monkeypatch):
    # k_min = 1 - p forces every keep-probability to 1 - p: the same masks as plain DropConnect from the
    # same mask generator, so the early accuracy difference is exactly 0 whatever tau
    P = _toy_P()
    monkeypatch.setattr(V, "load_data", lambda dataset, n_train, n_test, seed, *a, **kw: _toy_data(seed=seed))
    runs = I.plan(P)
    assert [(r["kind"], r.get("min_keep"), r.get("tau")) for r in runs if r["kind"] == "grid"] == [
        ("grid", 0.5, 0.01), ("grid", 0.7, 0.0), ("grid", 0.7, 0.01)]
    results = [I.execute(r) for r in runs]
    # execute is pure: the same run gives the same result
    again = I.execute(runs[1])
    strip = lambda r: [{k: v for k, v in e.items() if k != "seconds"} for e in r["epochs"]]  # noqa: E731
    assert strip(again) == strip(results[1])
    out = I.summarize(P, results)
    assert set(out) == {"curves", "importances", "timing", "collapse", "grid", "ledger"}
    curves = out["curves"]
    assert len(curves) == 4 * P["epochs"] and set(curves["method"]) == set(I.METHODS)
    assert set(out["collapse"]["tau"]) == {0.0, P["importance_tau"]} and set(out["collapse"]["seed"]) == {P["seed"]}
    assert set(out["importances"]) == {"importance_dc", "importance_dc_kl"}
    w = out["importances"]["importance_dc"][P["seed"]]
    assert w.dtype == np.float64 and (w >= 0).all()
    grid = out["grid"].set_index(["min_keep", "tau"])
    assert len(grid) == 4 and grid.loc[(0.5, 0.0), "reused"] and not grid.loc[(0.5, 0.01), "reused"]
    early = curves[curves.epoch <= 2].groupby("method")["test_acc"].mean()
    assert grid.loc[(0.5, 0.0), "diff_pp"] == pytest.approx(100 * (early["importance_dc"] - early["dropconnect"]))
    assert grid.loc[(0.7, 0.0), "diff_pp"] == 0.0 and grid.loc[(0.7, 0.01), "diff_pp"] == 0.0
    text = I.sensitivity_markdown(grid.reset_index())
    assert text.count("\n") == 3 and "+0.00" in text
    assert [c.claim for c in out["ledger"]] == [c.claim for c in I.claims(curves, P, out["collapse"])]
    # run_all is summarize(P, [execute(r) for r in plan(P)]) in this process: the same numbers
    again = run_all("importance_dropconnect", P)
    pd.testing.assert_frame_equal(again["curves"].drop(columns="seconds"), curves.drop(columns="seconds"))


def test_plot_helpers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramspace import plots

    rows = [dict(method=m, seed=s, epoch=e, test_acc=0.5 + 0.01 * e + 0.001 * s, test_loss=1.0 / e)
            for m in I.METHODS for s in range(2) for e in range(1, 4)]
    fig = plots.band_panels(pd.DataFrame(rows), "epoch", [("test_acc", "test accuracy"), ("test_loss", "test loss")],
                            hue="method", xlabel="epoch", title="t")
    assert len([a for a in fig.axes if a.get_visible()]) == 2 and fig.legends
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [I.METHOD_LABELS[m] for m in I.METHODS]
    ax = plots.importance_histograms({"importance_dc": np.array([0.0, 1e-3, 1.0, 3.0]),
                                      "importance_dc_kl": np.ones(4)})
    assert ax.get_xscale() == "log" and "25.0%" in ax.get_legend().get_texts()[0].get_text()
    plt.close("all")


@pytest.mark.parametrize("overrides,match", [
    (dict(min_keep=0.8), "min_keep"),                      # above 1 - drop_rate = 0.7
    (dict(drop_rate=0.6), "min_keep"),                     # min_keep 0.5 now above 1 - p = 0.4
    (dict(grid_min_keep=[0.5, 0.75]), "grid_min_keep"),
    (dict(collapse_seeds=3), "collapse_seeds"),            # smoke has 2 seeds
    (dict(grid_seeds=3), "grid_seeds"),
    (dict(early_epochs=3), "early_epochs"),                # smoke has 3 epochs
])
def test_rules_across_parameters_raise_in_resolve(overrides, match):
    with pytest.raises(ProfileError, match=match):
        resolve("importance_dropconnect", "smoke", overrides)


def test_rules_accept_the_boundaries():
    P = resolve("importance_dropconnect", "smoke", dict(min_keep=0.7, grid_min_keep=[0.1, 0.7], collapse_seeds=2,
                                                        grid_seeds=2, early_epochs=2))
    assert P["min_keep"] == 0.7 and P["grid_seeds"] == 2
    assert resolve("importance_dropconnect", "smoke", dict(dataset="cifar10", arch="resnet18"))["arch"] == "resnet18"


@pytest.mark.parametrize("dataset,arch", [("fashion-mnist", "resnet18"), ("mnist", "resnet50"), ("cifar10", "cnn"),
                                          ("svhn", "resnet34"), ("cifar100", "cnn")])
def test_any_architecture_goes_with_any_data_set(dataset, arch):
    # no lock between network and data: channels, classes and image size are read off the images
    P = resolve("importance_dropconnect", "smoke", dict(dataset=dataset, arch=arch))
    assert (P["dataset"], P["arch"]) == (dataset, arch)


def test_resnet18_runs_on_the_shipped_grey_images():
    # ResNet-18 (the paper's network) on Fashion-MNIST (1 channel, 28x28): a tiny run through the report's
    # code path, one seed, one importance-DropConnect run on 16 images
    P = resolve("importance_dropconnect", "smoke", dict(
        arch="resnet18", n_seeds=1, collapse_seeds=1, grid_seeds=1, n_train=16, n_test=8, batch_size=16, epochs=2,
        early_epochs=1, collapse_steps=2, grid_min_keep=[0.5], grid_tau=[0.0]))
    runs = I.plan(P)
    run = next(r for r in runs if r["method"] == "importance_dc")
    out = I.execute({**run, "collapse": None})
    assert len(out["epochs"]) == 2 and out["importance"].size == sum(
        w.numel() for n, w in V.resnet_cifar("resnet18", 10, 1, mean=None).named_parameters() if n.endswith("weight")
        and w.dim() > 1)
    assert 0 <= out["epochs"][-1]["test_acc"] <= 1
