"""Report 5 (reports/parameter_relevance.py): AUC table, Belsley illustrations, plan/execute/summarize on a
tiny end-to-end run, and the runner."""

import numpy as np
import pandas as pd
import pytest

from paramspace import runner
from paramspace.reports import parameter_relevance as relevance
from paramspace.claims import VERDICTS
from paramspace.reports import ProfileError, resolve


def test_auc_table_by_hand():
    f = [0.0, 0.5, 1.0]
    curves = pd.DataFrame(
        [dict(dataset="d", seed=0, criterion="a", fraction=x, quality=q) for x, q in zip(f, [1.0, 0.5, 0.0])]
        + [dict(dataset="d", seed=0, criterion="b", fraction=x, quality=q) for x, q in zip(f[::-1], [-3.0, 1.0, 1.0])]
    )
    auc = relevance.auc_table(curves).set_index("criterion")["auc"]
    assert auc["a"] == pytest.approx(0.5)  # mean of the line 1 - f
    # b sorted by fraction: (0, 1), (0.5, 1), (1, -3 -> clipped to 0): 0.5 * 1 + 0.5 * (1 + 0) / 2 = 0.75
    assert auc["b"] == pytest.approx(0.75)
    raw = relevance.auc_table(curves, clip_min=None).set_index("criterion")["auc"]
    assert raw["b"] == pytest.approx(0.5 * 1.0 + 0.5 * (1.0 - 3.0) / 2)  # = 0


def test_belsley_toy_flags_the_collinear_group():
    # cov of (sin, cos, 2 + cos, 2 + sin, cos + sin, x): constants drop out, so columns 0..4 span
    # only two directions (rank 2 among five) and x is the only one outside the group
    toy = relevance.belsley_toy()
    assert sorted(toy["flagged"]) == sorted(["sin x", "cos x", "2 + cos x", "2 + sin x", "cos x + sin x"])
    np.testing.assert_allclose(toy["q"].sum(1), 1.0, atol=1e-12)
    assert toy["share"][5] < 0.5


def test_belsley_synthetic_flags_the_block():
    # population: eigenvalues 0.05 (x 98) and 1 + 0.95 * 98 in the block -> eta ~ 43 > 30 for the
    # block directions; w_0 sits on eigenvalue ~1 (eta ~ 10)
    out = relevance.belsley_synthetic(n_samples=1000, seed=0)
    assert out["d"] == 100
    assert list(out["flagged"]) == list(range(1, 100))


@pytest.fixture(scope="module")
def smoke_run():
    params = resolve("parameter_relevance", "smoke",
                     dict(datasets=["wine"], n_seeds=1, hidden=[4], epochs=2, belsley_steps=3,
                          fractions=[0.0, 0.5, 1.0], noise_draws=2))
    return params, relevance.summarize(params, [relevance.execute(r) for r in relevance.plan(params)])


def test_run_smoke_structure(smoke_run):
    params, out = smoke_run
    curves, noise, timing, models = out["curves"], out["noise"], out["timing"], out["models"]
    assert len(curves) == len(relevance.CRITERIA) * 3
    assert set(curves["criterion"]) == set(relevance.CRITERIA)
    assert models["n_params"].tolist() == [13 * 4 + 4 + 4 * 3 + 3]
    assert len(timing) == len(relevance.CRITERIA) and (timing["seconds"] >= 0).all()
    assert len(noise) == (1 + len(relevance.NOISE_CRITERIA)) * len(params["noise_sigmas"])
    assert (noise[noise["sigma"] == 0.0]["output_std"] == 0.0).all()
    # every criterion starts from the same network and, with all parameters removed, predicts
    # class 0 for every test point
    from paramspace.data import load

    ds = load("wine", seed=params["seed"])
    start = curves[curves["fraction"] == 0.0]["quality"]
    assert start.nunique() == 1 and start.iloc[0] == pytest.approx(models["quality"].iloc[0])
    end = curves[curves["fraction"] == 1.0]["quality"]
    assert np.allclose(end, (ds.y_test == 0).float().mean().item())


def test_claims_from_smoke_run(smoke_run):
    params, out = smoke_run
    toy = relevance.belsley_toy()
    synth = relevance.belsley_synthetic()
    ledger = relevance.claims(out["curves"], toy, synth, params)
    # two self-checks, our literal reading of the deck's rule on the toy, then every non-random
    # criterion x data set
    assert len(ledger) == 3 + (len(relevance.CRITERIA) - 1) * len(params["datasets"])
    assert all(c.verdict in VERDICTS for c in ledger)
    assert [c.kind for c in ledger[:3]] == ["check", "check", "ours"]
    assert [c.verdict for c in ledger[:2]] == ["reproduced", "reproduced"]
    # the deck's rule takes the largest eigenvalue of the toy's correlation matrix first: x, the one
    # independent parameter (see test_toy_first_removed_and_flags_do_not_depend_on_the_index)
    assert ledger[2].verdict == ("reproduced" if toy["first"]["deck"] != "x" else "not reproduced")
    # only the deck's proposal (Belsley with the deck's condition index) vs random is the report's claim,
    # and it says where in the deck it stands; the rest are ours
    report = [c for c in ledger if c.kind == "report"]
    assert len(report) == len(params["datasets"]) and all(c.claim.startswith("Belsley's method (Laplace") for c in report)
    assert all("Качество прогноза" in c.deck for c in report)
    assert {c.kind for c in ledger[2:] if c not in report} == {"ours"}
    assert all(not c.counted for c in ledger if c.kind != "report")
    # one seed: no interval, never "reproduced"
    assert all(c.verdict != "reproduced" and c.interval is None for c in ledger[3:])
    md = relevance.summary_markdown(ledger)
    assert "2 of 2 pass" in md
    # with Belsley's condition index (our option) no row is the report's claim
    ours = relevance.claims(out["curves"], toy, synth, {**params, "condition_index": "belsley"})
    assert [c.kind for c in ours].count("report") == 0


def test_noise_map_on_the_decks_axes(smoke_run):
    params, out = smoke_run
    nm = out["noise_map"]
    assert set(nm["criterion"]) == set(relevance.NOISE_CRITERIA)
    assert len(nm) == len(relevance.NOISE_CRITERIA) * len(params["fractions"]) * len(params["noise_sigmas"])
    # no input noise -> no output noise, at every fraction removed
    assert (nm[nm["sigma"] == 0.0]["output_std"] == 0.0).all()
    # with every parameter removed the network outputs a constant: no output noise at any sigma
    assert (nm[nm["fraction"] == 1.0]["output_std"].abs() < 1e-7).all()
    # at fraction 0 every criterion is the unpruned network: the same numbers as its noise curve
    unpruned = out["noise"][out["noise"].criterion == "unpruned"].set_index("sigma")["output_std"]
    for crit in relevance.NOISE_CRITERIA:
        at0 = nm[(nm.criterion == crit) & (nm.fraction == 0.0)].set_index("sigma")["output_std"]
        np.testing.assert_allclose(at0.to_numpy(), unpruned.loc[at0.index].to_numpy(), rtol=1e-6)


def test_toy_first_removed_and_flags_do_not_depend_on_the_index():
    deck, bel = relevance.belsley_toy(index="deck"), relevance.belsley_toy(index="belsley")
    assert deck["flagged"] == bel["flagged"]
    np.testing.assert_allclose(deck["eta"], 1 / bel["eta"] ** 2, rtol=1e-9)
    assert set(deck["first"]) == {"deck", "belsley"} and deck["first"] == bel["first"]
    # Belsley's rule starts in the collinear group (smallest eigenvalue of the toy's covariance); the
    # deck's, read literally, takes the largest eigenvalue of the correlation matrix: its q there is
    # largest for x, which is (nearly) uncorrelated with the rest and sits on an eigenvalue of its own
    assert bel["first"]["belsley"] != "x"
    assert deck["first"]["deck"] == "x"


# --- runner (no notebook execution) -----------------------------------------------------------


def test_input_key_depends_on_parameters():
    p = resolve("parameter_relevance", "smoke")
    k1 = runner.input_key("parameter_relevance", p)
    assert k1 == runner.input_key("parameter_relevance", dict(p))
    assert len(k1) == 64 and int(k1, 16) >= 0
    assert k1 != runner.input_key("parameter_relevance", {**p, "epochs": p["epochs"] + 1})


def test_run_report_validates_before_compute(tmp_path):
    with pytest.raises(ProfileError):
        runner.run_report("parameter_relevance", "smoke", {"epochs": 0}, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ProfileError):
        runner.run_report("no_such_report", "smoke", output_dir=tmp_path / "out")


def test_runner_default_output_dir():
    from paramspace.data import project_root

    assert runner.default_output_dir() == project_root() / "book" / "reports"


# --- plan / execute / summarize ---------------------------------------------------------------


def test_plan_is_one_json_run_per_dataset_and_seed():
    import json

    P = resolve("parameter_relevance", "smoke", dict(seed=7, n_seeds=2, epochs=4, synthetic_epochs=9))
    runs = relevance.plan(P)
    assert [(r["dataset"], r["seed"]) for r in runs] == [(d, 7 + s) for d in P["datasets"] for s in range(2)]
    assert [r["epochs"] for r in runs] == [9 if r["dataset"] == "synthetic" else 4 for r in runs]
    assert json.loads(json.dumps(runs)) == runs
    for k in ("hidden", "lr", "batch_size", "prior_sigma", "kl_weight", "fractions", "belsley_steps",
              "laplace_damping", "condition_index", "noise_fraction", "noise_sigmas", "noise_draws", "device"):
        assert all(r[k] == P[k] for r in runs), k
    assert all(r["cpu_threads"] >= 1 for r in runs)


def test_execute_is_pure_a_run_alone_gives_its_rows_of_the_whole_report():
    import pickle

    P = resolve("parameter_relevance", "smoke",
                dict(datasets=["wine"], n_seeds=2, hidden=[3], epochs=1, belsley_steps=2, noise_draws=2))
    runs = relevance.plan(P)
    whole = relevance.summarize(P, [relevance.execute(r) for r in runs])
    alone = relevance.tables([pickle.loads(pickle.dumps(relevance.execute(runs[1])))])
    for k in ("curves", "noise", "noise_map", "models"):
        part = whole[k][whole[k].seed == runs[1]["seed"]].reset_index(drop=True)
        assert part.equals(alone[k]), k
    # summarize's tables are the notebook's: the area table has one column per criterion, in order
    assert list(whole["auc_tab"].columns) == list(relevance.CRITERIA)
    assert whole["models_tab"]["parameters"].tolist() == [13 * 3 + 3 + 3 * 3 + 3]
    assert whole["summary"] == relevance.summary_markdown(whole["claims"])
