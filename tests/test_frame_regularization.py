"""Report 4, frame_regularization: its rules, plan / execute / summarize, tables, claims and tuning rules."""

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from paramspace import vision as V
from paramspace.claims import VERDICTS, verdict_paired
from paramspace.frames import METHODS
from paramspace.reports import ProfileError, resolve
from paramspace.reports import frame_regularization as FR


def test_check_params_and_profiles():
    P = resolve("frame_regularization", "smoke")
    FR.check_params(P)
    with pytest.raises(ProfileError, match="frame_A"):
        FR.check_params({**P, "frame_A": 3.0, "frame_B": 2.0})
    with pytest.raises(ProfileError, match="none"):
        FR.check_params({**P, "methods": ["frame", "so"]})
    with pytest.raises(ProfileError, match="robust_methods"):
        FR.check_params({**P, "robust_methods": ["none", "ocnn"]})
    with pytest.raises(ProfileError, match="robust_methods"):
        FR.check_params({**P, "methods": ["none", "frame"], "robust_methods": ["none", "frame", "ocnn"]})
    # the GPU habits: channels_last needs CUDA (refused before any compute), amp is one of the modes
    if not torch.cuda.is_available():
        with pytest.raises(ProfileError, match="channels_last = True needs CUDA"):
            resolve("frame_regularization", "smoke", {"channels_last": True})
    with pytest.raises(ProfileError, match="amp"):
        resolve("frame_regularization", "smoke", {"amp": "fp16"})
    assert resolve("frame_regularization", "smoke", {"amp": "bf16"})["amp"] == "bf16"
    for bad in (dict(severities=[0, 1]), dict(severities=[3, 2]), dict(methods=["frame", "frame"]),
                dict(datasets=["imagenet"]), dict(simba_basis="haar"), dict(simba_checkpoints=[10, 1])):
        with pytest.raises(ProfileError):
            resolve("frame_regularization", "smoke", bad)
    paper = resolve("frame_regularization", "paper")
    assert paper["archs"] == ["resnet34", "resnet50"] and paper["datasets"] == ["cifar10", "cifar100", "svhn"]
    assert resolve("frame_regularization", "book")["simba_checkpoints"] == [1, 10, 50, 100, 1000]


def _synthetic_scores(bonus_clean):
    rows = []
    for d in ("mnist", "fashion-mnist"):
        for s in range(3):
            for m in METHODS:
                f = m == "frame"
                rows.append(dict(dataset=d, arch="small_resnet", method=m, seed=s,
                                 clean=0.9 + (bonus_clean if f else 0.0) + (0.002 if m == "ocnn" else 0.0)
                                 + 0.001 * s, shift=0.7 - (0.02 if f else 0.0),
                                 clean_matched=0.9 + 0.001 * s + (0.001 if f else 0.0), matched_at=0.8,
                                 shift_matched=0.7 + (0.03 if f else 0.0) + 0.001 * s * f,
                                 second_matched=0.6 - (0.01 if f else 0.0), second_name="rotated and shifted",
                                 asr_1=0.1 + (0.05 if m == "none" else 0.0), asr_10=0.2, asr_50=0.3, asr_100=0.4,
                                 asr_1000=1.0, asr_mean=0.5 - (0.1 if f else 0.0) + 0.01 * s,
                                 frac_in_bounds=0.3 + (0.05 * s if f else 0.0)))
    return pd.DataFrame(rows)


def _synthetic_wd():
    # book: the main runs have no weight decay, "none+wd" is the extra run
    return pd.DataFrame([dict(dataset=d, arch="small_resnet", seed=s, run=r, method=r.split("+")[0],
                              weight_decay=5e-4 if r == "none+wd" else 0.0,
                              clean={"none": 0.90, "frame": 0.905, "none+wd": 0.91}[r] + 0.001 * s)
                         for d in ("mnist", "fashion-mnist") for s in range(3) for r in ("none", "frame", "none+wd")])


def test_claims_follow_from_the_numbers():
    P = resolve("frame_regularization", "book")
    scores = _synthetic_scores(0.01)
    ledger = FR.claims(scores, P, _synthetic_wd())
    assert all(c.verdict in VERDICTS for c in ledger)
    assert all(c.verdict == verdict_paired(c.evidence) for c in ledger if not (c.same and c.tolerance > 0))
    report = [c for c in ledger if c.kind == "report"]
    assert all(c.deck for c in report)
    sec = FR.ledger_sections(ledger)
    # every cell of the two accuracy tables: 2 networks x 3 data sets x 5 baselines
    assert len(sec["accuracy"]) == 30
    first = sec["accuracy"][0]  # ResNet-34, CIFAR-10, frame vs none, on Fashion-MNIST
    assert "95.17 ± 0.05 vs 94.53 ± 0.03" in first.report_value and "Fashion-MNIST" in first.claim
    assert "stand-in" in first.claim and first.evidence == pytest.approx([1.0] * 3) and first.verdict == "reproduced"
    # the deck has OCNN ahead of frame on CIFAR-10 with ResNet-50 (95.29 vs 95.25): that row tests OCNN - frame
    flip = [c for c in sec["accuracy"] if "OCNN beats frame" in c.claim]
    assert len(flip) == 1 and "ResNet-50 on CIFAR-10" in flip[0].claim
    assert flip[0].evidence == pytest.approx([-0.8] * 3) and flip[0].verdict == "not reproduced"
    svhn = [c for c in sec["accuracy"] if "on SVHN (ours on MNIST" in c.claim]
    assert len(svhn) == 10
    # every number of the domain-shift table: frame vs none and vs OCNN, corrupted and second domain
    assert len(sec["shift"]) == 4 and all("Fashion-MNIST" in c.claim for c in sec["shift"])
    cor = sec["shift"][0]
    assert "76.65 ± 0.15 vs 74.77 ± 0.25" in cor.report_value and "94.53 ± 0.01" in cor.report_value
    assert cor.evidence == pytest.approx([3.0, 3.1, 3.2]) and cor.verdict == "reproduced"
    assert sec["shift"][1].evidence == pytest.approx([-1.0] * 3) and sec["shift"][1].verdict == "not reproduced"
    # SimBA: five iteration counts x (vs none, vs OCNN); none's ASR after 1 iteration is 5 points higher
    assert len(sec["simba"]) == 10
    s1 = sec["simba"][0]
    assert "39.56 vs 52.08" == s1.report_value and s1.evidence == pytest.approx([5.0] * 3)
    assert sec["simba"][5].evidence == pytest.approx([0.0] * 3) and sec["simba"][5].verdict == "not reproduced"
    # weight decay: frame without (90.5%) vs none with it (91%): -0.5 pp + our tolerance 0.5 = 0 -> not reproduced
    assert len(sec["wd"]) == 2 and sec["wd"][0].tolerance == 0.5
    assert sec["wd"][0].evidence == pytest.approx([0.0] * 3) and sec["wd"][0].verdict == "not reproduced"
    # self-checks: |clean_matched(frame) - none| = 0.1 pp is within the 0.5 pp tolerance
    checks = [c for c in ledger if c.kind == "check"]
    frame_check = [c for c in checks if "of frame" in c.claim]
    assert len(frame_check) == 2 and frame_check[0].evidence == pytest.approx([0.4] * 3)
    assert frame_check[0].verdict == "reproduced"
    ocnn_check = [c for c in checks if "of OCNN" in c.claim]  # identical clean accuracies: only the tolerance
    assert ocnn_check[0].verdict == "indistinguishable"
    ours = [c for c in ledger if c.kind == "ours"]
    assert any("MNIST, small ResNet, not a deck setting" in c.claim for c in ours)
    assert any("eigenvalues" in c.claim and "the deck shows no spectra" in c.report_value for c in ours)
    text = FR.summary_markdown(ledger, scores, P)
    assert "30 of the report's claims" in text and "Fashion-MNIST, small ResNet" in text


def test_deck_tables_and_standins():
    # the deck's SimBA rates are whole numbers of correctly classified images: 96, 92 and 91
    assert FR.simba_denominators() == {"none": 96, "ocnn": 92, "frame": 91}
    assert FR.simba_denominators({"x": (25.0, 50.0, 75.0)}) == {"x": 4}
    assert FR.DECK_ACCURACY["resnet34"]["frame"]["cifar100"] == (77.61, 0.07)
    assert FR.DECK_ACCURACY["resnet50"]["ocnn"]["cifar10"] == (95.29, 0.03)
    book = resolve("frame_regularization", "book")
    assert FR.deck_setting("resnet50", "cifar100", book) == ("fashion-mnist", "small_resnet", True)
    assert FR.deck_setting("resnet34", "svhn", book) == ("mnist", "small_resnet", True)
    paper = resolve("frame_regularization", "paper")
    assert FR.deck_setting("resnet50", "svhn", paper) == ("svhn", "resnet50", False)
    t = FR.deck_accuracy_table()
    assert t.shape == (6, 6) and t.loc["frame", "ResNet-34, CIFAR-10"] == "95.17 ± 0.05"


def test_weight_decay_runs():
    book = resolve("frame_regularization", "book")
    assert FR.wd_variants(book) == [("none+wd", "none", 5e-4)] and FR.wd_pair(book) == ("frame", "none+wd")
    paper = resolve("frame_regularization", "paper")  # every method has weight decay 5e-4 there
    assert FR.wd_variants(paper) == [("frame-wd", "frame", 0.0)] and FR.wd_pair(paper) == ("frame-wd", "none")
    assert FR.wd_variants({**book, "wd_decay": 0.0}) == []


def test_tables_and_plot_helpers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paramspace import plots

    P = {**resolve("frame_regularization", "book"), "simba_checkpoints": [1, 1000]}
    scores = _synthetic_scores(0.01).assign(second=np.nan, frame_penalty=1.0, seconds=1.0)
    acc = FR.accuracy_table(scores, P)
    assert acc.loc["frame", "MNIST"] == "91.10 ± 0.10" and list(acc.columns) == ["MNIST", "Fashion-MNIST"]
    sh = FR.shift_table(scores, P)
    assert sh.loc["frame", ("MNIST", "corrupted")] == "68.00 ± 0.00"
    asr = FR.asr_table(scores, P)
    assert asr.loc["no regularization", ("MNIST", "t = 1000")] == "100.0 ± 0.0"
    # every column of every table shown on the page has a header
    tt = FR.frame_markdown(FR.timing_table(scores))
    assert tt.splitlines()[0] == "| method | training time (s), mean | sd |"
    assert "| no regularization | 1.0 | 0.0 |" in tt
    assert FR.frame_markdown(asr).splitlines()[0].startswith("| method | MNIST, t = 1 | MNIST, t = 1000 |")
    with pytest.raises(ValueError, match="header"):
        FR.frame_markdown(pd.DataFrame({"": [1]}))
    ds = FR.deck_shift_table(scores, P).reset_index()
    row = ds[(ds.setting == "the deck: ResNet-34, CIFAR-10") & (ds.method == "frame")].iloc[0]
    assert row["second domain (deck: CINIC-10)"] == "71.20 ± 0.32" and row["clean (matched)"] == "94.53 ± 0.01"
    row = ds[ds.setting.str.startswith("ours: MNIST") & (ds.method == "frame")].iloc[0]
    assert row["corrupted (deck: CIFAR-10-C)"] == "73.10 ± 0.10" and "rotated and shifted" in row["setting"]
    dsim = FR.deck_simba_table(scores, P).reset_index()
    assert list(dsim.columns[2:]) == ["t = 1", "t = 10", "t = 50", "t = 100", "t = 1000"]
    assert dsim.iloc[1]["t = 1000"] == "92.06" and dsim.iloc[3]["t = 1"] == "15.0 ± 0.0"
    assert dsim.iloc[3]["t = 10"] == "—"  # not a checkpoint of this (synthetic) run
    w = FR.wd_table(_synthetic_wd(), P)
    assert w.loc["no regularization, weight decay 0.0005", "MNIST"] == "91.10 ± 0.10"
    curves = FR.asr_curves(scores, P)
    fig = plots.method_panels(curves, "iterations", "asr", "panel", ["MNIST", "Fashion-MNIST"], {},
                              FR.METHOD_LABELS, "iterations", "ASR (%)", logx=True)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    sp = pd.DataFrame([dict(dataset="mnist", arch="small_resnet", method=m, seed=0, layer=i, label=f"l{i}",
                            side="input", ev_min=0.1, ev_q05=0.2, ev_median=1.0, ev_q95=2.0, ev_max=3.0)
                       for m in ("none", "frame") for i in range(3)])
    fig = plots.frame_spectra_figure(FR.spectra_for_figure(sp, P), 0.5, 2.0, ["MNIST"], {}, FR.METHOD_LABELS)
    assert fig.axes[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["no regularization", "frame"]
    plt.close("all")


def test_tune_weights_follows_its_rule():
    P = {**resolve("frame_regularization", "smoke"), "n_train": 64, "n_test": 32, "widths": [2, 2, 2], "epochs": 1}
    # a tolerance nothing can violate: every weight of the grid is tried and the last one is kept
    t = FR.tune_weights(P, "mnist", seed=100, grid=(1e-3, 1e-2), tol_pp=1000.0, methods=["none", "so"])
    assert t.method.tolist() == ["none", "so", "so"] and t.chosen.tolist() == [True, False, True]
    # a tolerance everything violates (accuracy would have to rise by more than 100 points): the search
    # stops after the first weight and keeps none
    t = FR.tune_weights(P, "mnist", seed=100, grid=(1e-3, 1e-2), tol_pp=-100.0, methods=["so"])
    assert t.method.tolist() == ["none", "so"] and t.chosen.tolist() == [True, False]


def test_tune_simba_eps_follows_its_rule():
    # enough training that some test images are classified correctly (the rate is over those)
    P = {**resolve("frame_regularization", "smoke"), "n_train": 256, "n_test": 32, "widths": [4, 4, 4], "epochs": 2,
         "batch_size": 32, "simba_images": 32}
    t = FR.tune_simba_eps(P, "mnist", seed=100, grid=(0.01, 0.5), target=1.0, iters=3)
    assert t.eps.tolist() == [0.01, 0.5] and t.chosen.tolist() == [False, True]  # any rate is <= 100%
    assert ((t.asr >= 0) & (t.asr <= 1)).all()
    t = FR.tune_simba_eps(P, "mnist", seed=100, grid=(0.01, 0.5), target=-1.0, iters=3)
    assert not t.chosen.any()  # no rate is below 0: nothing is chosen


def test_checkpoint_matching():
    assert FR.match_checkpoint([0.80, 0.86, 0.90, 0.93], 0.89) == 2
    assert FR.match_checkpoint([0.88, 0.90, 0.88], 0.89) == 2  # ties: the later checkpoint


def test_shifted_domain():
    P = {**resolve("frame_regularization", "smoke"), "n_shift": 5}
    data = V.load_data("mnist", 16, 8, 0)
    name, X, y = FR.shifted_domain(data, P, 0)
    assert name == "rotated and shifted" and X.shape == (5, 1, 28, 28) and torch.equal(y, data.y_test[:5])
    assert torch.equal(X, FR.shifted_domain(data, P, 0)[1])  # the same for every model of a seed
    # a real second domain where one is available offline (SVHN -> MNIST): no affine stand-in
    svhn = V.ImageData("svhn", X, y, X, y, 10, "cifar")
    assert FR.shifted_domain(svhn, P, 0)[0] == "MNIST"


def test_rules_across_parameters_in_resolve():
    resolve("frame_regularization", "smoke", {"frame_A": 2.0, "frame_B": 2.0})  # A = B is a tight frame: fine
    with pytest.raises(ProfileError, match="frame_A"):
        resolve("frame_regularization", "smoke", {"frame_A": 2.5, "frame_B": 2.0})
    with pytest.raises(ProfileError, match="'none' and 'frame'"):
        resolve("frame_regularization", "smoke", {"methods": ["none", "so"], "robust_methods": ["none"]})
    with pytest.raises(ProfileError, match="robust_methods"):
        resolve("frame_regularization", "smoke", {"robust_methods": ["frame", "ocnn"]})
    with pytest.raises(ProfileError, match="robust_methods"):
        resolve("frame_regularization", "book", {"methods": ["none", "frame", "so"]})  # book's robust has ocnn
    ok = resolve("frame_regularization", "book", {"methods": ["none", "frame"], "robust_methods": ["frame", "none"]})
    assert ok["methods"] == ["none", "frame"]


def test_plan_one_run_per_dataset_arch_and_seed():
    P = resolve("frame_regularization", "smoke")
    runs = FR.plan(P)
    json.dumps(runs)  # plain data
    # smoke: 1 data set x 1 network x 2 seeds, each run holding 6 methods + the weight-decay run "none+wd"
    assert len(runs) == 2 and [r["seed"] for r in runs] == [0, 1]
    assert all(r["dataset"] == "fashion-mnist" and r["arch"] == "small_resnet" for r in runs)
    todo = runs[0]["trainings"]
    assert [t["run"] for t in todo] == list(P["methods"]) + ["none+wd"] and runs[1]["trainings"] == todo
    assert todo[6]["weight_decay"] == 5e-4 and todo[6]["kind"] == "wd" and todo[0]["weight_decay"] == 0.0
    frame_run = todo[1]
    assert frame_run["reg_weight"] == P["frame_weight"] and frame_run["robust"] and frame_run["match_checkpoints"] == 2
    assert todo[0]["match_checkpoints"] == 0 and todo[0]["reg_weight"] == 0.0  # none: final weights
    assert not todo[2]["robust"] and todo[2]["match_checkpoints"] == 0  # MHE: not attacked, not matched
    # methods other than "none" come after it, whatever their order in the parameters
    P2 = {**P, "methods": ["frame", "none"], "robust_methods": ["none", "frame"], "n_seeds": 1, "wd_decay": 0.0}
    assert [[t["method"] for t in r["trainings"]] for r in FR.plan(P2)] == [["none", "frame"]]
    book = resolve("frame_regularization", "book")
    assert len(FR.plan(book)) == 2 * 1 * 3 == 6 and all(len(r["trainings"]) == 6 + 1 for r in FR.plan(book))
    assert [(r["dataset"], r["seed"]) for r in FR.plan(book)] == [(d, s) for d in ("mnist", "fashion-mnist")
                                                                   for s in range(3)]
    paper = resolve("frame_regularization", "paper")  # frame without weight decay is the extra run there
    runs = FR.plan(paper)
    assert len(runs) == 3 * 2 * 3 == 18 and [t["run"] for t in runs[0]["trainings"]][6] == "frame-wd"
    assert all(len(r["trainings"]) == 7 for r in runs)


def _tiny(**kw):
    P = resolve("frame_regularization", "smoke", {
        "n_seeds": 1, "n_train": 64, "n_test": 32, "widths": [2, 2, 2], "methods": ["none", "frame", "so"],
        "robust_methods": ["none", "frame"], "corruptions": ["gaussian_noise", "contrast"], "severities": [1],
        "n_shift": 8, "simba_images": 32, "simba_checkpoints": [1, 3], "match_checkpoints": 2, "batch_size": 32,
        **kw})
    return P


def test_execute_and_summarize_on_a_tiny_run(monkeypatch):
    P = _tiny(epochs=2, match_checkpoints=4)  # the frame network matches at its first checkpoint here
    runs = FR.plan(P)
    assert len(runs) == 1 and [t["run"] for t in runs[0]["trainings"]] == ["none", "frame", "so", "none+wd"]
    calls = []
    real_shift = FR.domain_shift
    monkeypatch.setattr(FR, "domain_shift", lambda *a, **k: calls.append(1) or real_shift(*a, **k))
    results = [FR.execute(r) for r in runs]
    pickle.dumps(results)
    none, frame, so, wd = results[0]["trainings"]
    assert [c["at"] for c in frame["checkpoints"]] == [0.25, 0.5, 0.75, 1.0] and none["checkpoints"] == []
    assert frame["checkpoints"][-1]["clean"] == frame["clean"]  # the last checkpoint is the end of training
    # the matched checkpoint: the one whose clean accuracy is closest to the unregularized network's
    k = FR.match_checkpoint([c["clean"] for c in frame["checkpoints"]], none["clean"])
    m = frame["matched"]
    assert m["at"] == frame["checkpoints"][k]["at"] and m["clean"] == frame["checkpoints"][k]["clean"]
    assert none["matched"] == dict(at=1.0, clean=none["clean"], second=none["second"][1],
                                   shift=pytest.approx(np.mean([r["accuracy"] for r in none["shift"]])))
    assert math.isnan(so["matched"]["clean"]) and math.isnan(so["matched"]["shift"])
    # the domain shift is evaluated once per trained network, plus once at the matched checkpoint (not the end)
    assert m["at"] < 1.0 and len(calls) == 3 + 1
    # ... and it is the domain shift of that checkpoint's weights (retrain, keep every checkpoint's weights)
    run = runs[0]
    spec = {**{k: v for k, v in run.items() if k != "trainings"}, **run["trainings"][1]}
    data = V.load_data(run["dataset"], run["n_train"], run["n_test"], run["seed"], run["augment"])
    model, reg = FR._network(spec, data, torch.device("cpu"))
    states = []
    FR._train(model, data, reg, spec, 4, lambda step, total: states.append(
        {n: v.clone() for n, v in model.state_dict().items()}))
    model.load_state_dict(states[k])
    ev = real_shift(model, data, spec, run["seed"], torch.device("cpu"), FR.shifted_domain(data, spec, run["seed"]))
    assert m["shift"] == pytest.approx(np.mean([r["accuracy"] for r in ev["shift"]])) and m["second"] == ev["second"][1]
    assert 0 < frame["simba_attacked"] <= 32 and none["simba_attacked"] > 0 and set(frame["asr"]) == {1, 3} and math.isnan(so["asr"][1])
    assert len(frame["spectra"]) == 10 and (frame["spectra"].ev_min <= frame["spectra"].ev_max).all()
    assert frame["train"]["mean_reg"] > 0 and none["train"]["mean_reg"] == 0
    # a run is pure: executing it again gives the same numbers
    again = FR.execute(runs[0])["trainings"][1]
    assert again["clean"] == frame["clean"] and again["checkpoints"] == frame["checkpoints"]
    assert again["matched"] == frame["matched"]
    out = FR.summarize(P, results)
    scores = out["scores"]
    assert scores.method.tolist() == ["none", "frame", "so"] and len(out["shift"]) == 3 * 2
    row = scores.set_index("method")
    ref = row.loc["none", "clean"]
    assert ref == none["clean"]
    assert row.loc["frame", "clean_matched"] == frame["checkpoints"][k]["clean"]
    assert row.loc["frame", "matched_at"] == frame["checkpoints"][k]["at"]
    assert row.loc["frame", "shift_matched"] == m["shift"] and row.loc["frame", "second_matched"] == m["second"]
    assert row.loc["none", "matched_at"] == 1.0 and row.loc["none", "clean_matched"] == ref
    assert math.isnan(row.loc["so", "clean_matched"]) and math.isnan(row.loc["so", "asr_mean"])
    assert out["wd"].run.tolist() == ["none", "frame", "none+wd"] and out["wd"].clean.iloc[2] == wd["clean"]
    assert all(c.verdict in VERDICTS for c in out["claims"])
    assert set(out["tables"]) >= {"accuracy", "deck_shift", "deck_simba", "wd", "spectrum", "time"}
    assert "Fashion-MNIST" in out["text"]["summary"]


def test_wd_rows_in_plan_order_with_every_seed():
    # two seeds: one run each, the weight-decay training after its seed's main trainings
    P = _tiny(n_seeds=2, methods=["none", "frame"], robust_methods=["none", "frame"])
    runs = FR.plan(P)
    assert [(r["seed"], [t["run"] for t in r["trainings"]]) for r in runs] == [
        (0, ["none", "frame", "none+wd"]), (1, ["none", "frame", "none+wd"])]
