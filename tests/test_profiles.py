"""Profiles: validation, the notebook's parameters cell, and the command line."""

import json
from pathlib import Path

import pytest

from paramspace import profiles
from paramspace.__main__ import main, parse_sets
from paramspace.data import project_root
from paramspace.profiles import ProfileError, resolve

R = "parameter_relevance"
PAIRS = [(r, p) for r in profiles.REPORTS for p in profiles.PROFILES]


@pytest.mark.parametrize("report,profile", PAIRS)
def test_every_profile_resolves(report, profile):
    values = resolve(report, profile)
    assert set(values) == set(profiles.REPORTS[report].params)
    assert values["profile"] == profile
    # resolving returns a copy: mutating it does not leak into the next call
    for v in values.values():
        if isinstance(v, list):
            v.append("junk")
    assert resolve(report, profile) == profiles.validate(report, profiles.REPORTS[report].profiles[profile])


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
    values = dict(profiles.REPORTS[R].profiles["book"])
    del values["epochs"]
    with pytest.raises(ProfileError, match="missing.*epochs"):
        profiles.validate(R, values)


def test_params_from_namespace_picks_parameters():
    ns = dict(resolve(R, "smoke"), unrelated=object(), __name__="x")
    assert profiles.params_from_namespace(R, ns) == resolve(R, "smoke")
    del ns["lr"]
    with pytest.raises(ProfileError, match="lr"):
        profiles.params_from_namespace(R, ns)


# --- the notebook's parameters cell is the book profile -----------------------------------------


def _parameters_cell(path: Path) -> str:
    lines = path.read_text().splitlines()
    start = lines.index('# %% tags=["parameters"]') + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("# %%"))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("report", list(profiles.REPORTS))
def test_notebook_parameters_cell_equals_book_profile(report):
    nb = Path(profiles.REPORTS[report].notebook)
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
    assert R in out and all(p in out for p in profiles.PROFILES)


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
    assert shown["epochs"] == profiles.REPORTS[R].profiles["smoke"]["epochs"]


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
