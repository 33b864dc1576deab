"""Profiles: validation, the notebook's parameters cell, and the command line."""

import json
from pathlib import Path

import pytest

from paramspace import reports
from paramspace.__main__ import main, parse_sets
from paramspace.data import project_root
from paramspace.reports import ProfileError, resolve
from paramspace.reports.spec import validate

R = "parameter_relevance"
PAIRS = [(r, p) for r in reports.REPORTS for p in reports.PROFILES]


@pytest.mark.parametrize("report,profile", PAIRS)
def test_every_profile_resolves(report, profile):
    values = resolve(report, profile)
    assert set(values) == set(reports.REPORTS[report].params)
    assert values["profile"] == profile
    # resolving returns a copy: mutating it does not leak into the next call
    for v in values.values():
        if isinstance(v, list):
            v.append("junk")
    assert resolve(report, profile) == validate(reports.REPORTS[report], reports.REPORTS[report].profiles[profile])


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ProfileError) as exc:
        resolve(R, "nope")
    msg = str(exc.value)
    assert "nope" in msg and all(p in msg for p in ("smoke", "book", "paper"))


def test_unknown_report():
    with pytest.raises(ProfileError, match=R):
        resolve("no_such_report", "book")


def test_unknown_override_lists_valid_parameters():
    with pytest.raises(ProfileError) as exc:
        resolve(R, "smoke", {"epoch": 3})
    msg = str(exc.value)
    assert "epoch" in msg
    for name in ("epochs", "hidden", "lr", "fractions", "device"):
        assert name in msg


@pytest.mark.parametrize("name,value", [
    ("epochs", "ten"), ("epochs", True), ("epochs", 2.5), ("hidden", 3), ("lr", "0.1"),
    ("datasets", "wine"), ("hidden", [True]), ("hidden", [4.0]), ("fractions", [False, True]),
    ("noise_sigmas", [0.0, True]), ("device", 0),
])
def test_wrong_type_names_the_parameter(name, value):
    with pytest.raises(ProfileError) as exc:
        resolve(R, "smoke", {name: value})
    assert repr(name) in str(exc.value)


@pytest.mark.parametrize("name,value", [
    ("epochs", 0), ("n_seeds", -1), ("seed", -1), ("lr", 0.0), ("lr", -1e-3), ("kl_weight", -0.5),
    ("fractions", [0.0, 0.5, 0.2]), ("fractions", [0.5]), ("fractions", [0.0, 1.5]),
    ("device", "tpu"), ("datasets", ["mnist"]), ("datasets", []), ("hidden", []), ("hidden", [4, 0]),
    ("noise_fraction", 1.0), ("noise_sigmas", [0.0, -0.1]), ("profile", "paper"),
])
def test_bad_values_raise(name, value):
    with pytest.raises(ProfileError) as exc:
        resolve(R, "smoke", {name: value})
    assert name in str(exc.value) or "profile" in str(exc.value)


@pytest.mark.parametrize("overrides", [
    dict(device="cuda:1"), dict(device="cpu"), dict(kl_weight=0.0), dict(noise_fraction=0.0),
    dict(datasets=["boston"]), dict(fractions=[0.0, 1.0]), dict(profile="smoke"),
])
def test_good_overrides_are_accepted(overrides):
    values = resolve(R, "smoke", overrides)
    for k, v in overrides.items():
        assert values[k] == v


def test_int_for_float_is_converted_and_tuple_to_list():
    values = resolve(R, "smoke", {"lr": 1, "prior_sigma": 2, "hidden": (4, 4)})
    assert values["lr"] == 1.0 and type(values["lr"]) is float
    assert values["prior_sigma"] == 2.0 and type(values["prior_sigma"]) is float
    assert values["hidden"] == [4, 4] and type(values["hidden"]) is list


def test_validate_reports_missing_parameters():
    values = dict(reports.REPORTS[R].profiles["book"])
    del values["epochs"]
    with pytest.raises(ProfileError, match="missing.*epochs"):
        validate(reports.REPORTS[R], values)


def test_params_from_namespace_picks_parameters():
    ns = dict(resolve(R, "smoke"), unrelated=object(), __name__="x")
    assert reports.params_from_namespace(R, ns) == resolve(R, "smoke")
    del ns["lr"]
    with pytest.raises(ProfileError, match="lr"):
        reports.params_from_namespace(R, ns)


# --- the notebook's parameters cell is the book profile -----------------------------------------


def _parameters_cell(path: Path) -> str:
    lines = path.read_text().splitlines()
    start = lines.index('# %% tags=["parameters"]') + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("# %%"))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("report", list(reports.REPORTS))
def test_notebook_parameters_cell_equals_book_profile(report):
    nb = Path(reports.REPORTS[report].notebook)
    nb = nb if nb.is_absolute() else project_root() / nb
    ns: dict = {}
    exec(_parameters_cell(nb), {}, ns)
    assert ns == resolve(report, "book")


def test_parameters_cell_parser_on_a_hand_made_notebook(tmp_path):
    p = tmp_path / "nb.py"
    p.write_text('# %%\nimport os\n\n# %% tags=["parameters"]\na = 1\nb = [2, 3]\n\n# %%\nc = 4\n')
    ns: dict = {}
    exec(_parameters_cell(p), {}, ns)
    assert ns == {"a": 1, "b": [2, 3]}


# --- command line -----------------------------------------------------------------------------


def test_cli_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert R in out and all(p in out for p in reports.PROFILES)


def test_cli_show_unknown_profile(capsys):
    assert main(["show", R, "--profile", "nope"]) == 2
    captured = capsys.readouterr()
    assert "error" in captured.err and "nope" in captured.err and "book" in captured.err
    assert captured.out == ""


def test_cli_show_bad_value(capsys):
    assert main(["show", R, "--set", "epochs=0"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_cli_set_without_equals(capsys):
    assert main(["show", R, "--set", "epochs"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_cli_show_parses_yaml_values(capsys):
    assert main(["show", R, "--profile", "smoke", "--set", "hidden=[4, 4]", "--set", "lr=0.5",
                 "--set", "datasets=[wine]", "--device", "cpu"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["hidden"] == [4, 4]
    assert shown["lr"] == 0.5
    assert shown["datasets"] == ["wine"]
    assert shown["device"] == "cpu" and shown["profile"] == "smoke"
    assert shown["epochs"] == reports.REPORTS[R].profiles["smoke"]["epochs"]


def test_parse_sets():
    assert parse_sets(["a=1", "b = [1, 2]", "c=cpu", "d=true", "e=1e-3", "f=x=y"]) == \
        {"a": 1, "b": [1, 2], "c": "cpu", "d": True, "e": 1e-3, "f": "x=y"}
    with pytest.raises(ProfileError):
        parse_sets(["novalue"])


def test_cli_unknown_command_exits():
    with pytest.raises(SystemExit):
        main(["frobnicate"])


def test_cli_set_exponent_float(capsys):
    # PyYAML alone would read 1e-3 as the string '1e-3'
    assert main(["show", R, "--profile", "smoke", "--set", "lr=1e-3", "--set", "noise_sigmas=[0, 2e-1]"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lr"] == 0.001 and shown["noise_sigmas"] == [0.0, 0.2]


# --- issue 16: values that passed and failed later (defect 7), errors that were tracebacks (6) --------


@pytest.mark.parametrize("text,problem", [
    ("lr=Infinity", "finite"), ("lr=1e400", "finite"), ("lr=NaN", "finite"), ("lr=.inf", "finite"),
    ("seed=18446744073709551616", "2**32"), ("seed=4294967296", "2**32"),
    ("epochs=1000000000000", "ceiling on epochs"), ("epochs=10001", "ceiling on epochs"),
    ("synthetic_n=1000000000000", "at most"), ("lr=1" + "0" * 399 + ".5", "finite"),
    ("datasets=[wine, wine]", "more than once"), ("device=cuda:anything", "cuda:N"), ("device=cuda:", "cuda:N"),
    ("epochs=1:30", "must be int"), ("lr=1e13", "at most"),
])
def test_values_that_used_to_pass_and_fail_later(text, problem, capsys):
    """Every one is a one-line error naming the parameter (never a traceback, never a late failure)."""
    assert main(["show", R, "--profile", "smoke", "--set", text]) == 2
    err = capsys.readouterr().err
    name = text.split("=")[0]
    assert err.startswith("error: ") and err.count("\n") == 1 and repr(name) in err and problem in err
    assert len(err) < 400  # a 400-digit number is cut, not pasted whole


def test_seed_plus_n_seeds_stays_below_2_32():
    with pytest.raises(ProfileError, match="seed \\+ n_seeds"):
        resolve(R, "smoke", {"seed": 2**32 - 1, "n_seeds": 2})
    assert resolve(R, "smoke", {"seed": 2**32 - 2, "n_seeds": 2})["seed"] == 2**32 - 2


@pytest.mark.parametrize("text,value", [
    ("010", 10), ("1:30", "1:30"), ("yes", "yes"), ("on", "on"), ("0o17", 15), ("0x1f", 31), ("1e-3", 1e-3),
    ("-2.5E+2", -250.0), ("[8, 8]", [8, 8]), ("[wine, boston]", ["wine", "boston"]), ("TRUE", True),
    ("null", None), ("1_000", "1_000"), ("2001-01-01", "2001-01-01"),
])
def test_values_are_read_as_yaml_1_2(text, value):
    """PyYAML's YAML 1.1 read 010 as 8, 1:30 as 90, yes/on as True and a date as a date."""
    assert parse_sets([f"x={text}"])["x"] == value


@pytest.mark.parametrize("text,problem", [
    ("hidden=[8, 8", "cannot read"), ("hidden=!!python/object/apply:os.system [echo hi]", "cannot read"),
    ("hidden={a: [1}", "cannot read"), ("seed=" + "9" * 5000, "cannot read"), ("=3", "no name"),
])
def test_unreadable_values_are_one_line_errors(text, problem, capsys):
    assert main(["show", R, "--profile", "smoke", "--set", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and problem in err and len(err) < 400


def test_set_given_twice_is_an_error():
    with pytest.raises(ProfileError, match="twice"):
        parse_sets(["lr=0.1", "lr=0.2"])


@pytest.mark.parametrize("text,pairs", [
    ("hidden=[8, 8]", ["hidden=[8, 8]"]),
    ("hidden=[8, 8] lr=0.5", ["hidden=[8, 8]", "lr=0.5"]),
    ("datasets=[wine, boston] epochs=3", ["datasets=[wine, boston]", "epochs=3"]),
    ("'x=a b' y=2", ["x=a b", "y=2"]), ("", []),
])
def test_make_set_string_is_split_like_a_shell_line(text, pairs):
    from paramspace.__main__ import split_set_string

    assert split_set_string(text) == pairs


def test_cli_set_string(capsys):
    assert main(["show", R, "--profile", "smoke", "--set-string", "hidden=[8, 8] lr=0.5"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["hidden"] == [8, 8] and shown["lr"] == 0.5


# --- issue 11: the cross-parameter rules run in resolve(), before any compute ------------------------


@pytest.mark.parametrize("report,overrides,match", [
    ("importance_dropconnect", dict(min_keep=0.9, early_epochs=10), "min_keep"),
    ("importance_dropconnect", dict(early_epochs=10_000), "early_epochs"),
    ("variational_complexity", dict(lambda_min=2.0, lambda_max=1.0), "lambda_min"),
    ("frame_regularization", dict(frame_A=2.0, frame_B=1.0), "frame_A"),
    ("metric_analysis", dict(n_ellipses=10_000), "n_ellipses"),
    ("compression_leaderboard", dict(fractions=[0.1, 1.0]), "fractions"),
])
def test_cross_parameter_rules_fail_in_resolve(report, overrides, match):
    with pytest.raises(ProfileError, match=match) as exc:
        resolve(report, "smoke", overrides)
    assert report in str(exc.value)


def test_cross_parameter_rules_fail_in_show_and_in_the_notebook(capsys):
    assert main(["show", "importance_dropconnect", "--set", "min_keep=0.9", "--set", "early_epochs=10"]) == 2
    assert "min_keep" in capsys.readouterr().err
    ns = dict(resolve("importance_dropconnect", "smoke"), min_keep=0.9)
    with pytest.raises(ProfileError, match="min_keep"):
        reports.params_from_namespace("importance_dropconnect", ns)


def test_every_report_with_rules_is_wired():
    import importlib

    for report in reports.NAMES:
        mod = reports.module(report)
        if report != "parameter_relevance":  # the one report without rules across parameters
            assert callable(mod.REPORT.check)
