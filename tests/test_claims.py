"""Claims ledger: Student-t intervals, verdicts, and the JSON round trip."""

import math

import numpy as np
import pytest
from scipy import stats

from paramspace import claims as C


def test_mean_interval_by_hand():
    v = [1.0, 2.0, 4.0]
    m, lo, hi = C.mean_interval(v)
    # mean 7/3, sample sd sqrt(((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2) = sqrt(7/3)
    mean = 7 / 3
    sd = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    assert sd == pytest.approx(math.sqrt(7 / 3))
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert stats.t.ppf(0.975, 2) == pytest.approx(4.302652729911275, rel=1e-9)  # textbook t_{0.975, 2}
    assert m == pytest.approx(mean)
    assert lo == pytest.approx(mean - half) and hi == pytest.approx(mean + half)


def test_mean_interval_level_and_symmetry():
    v = [0.5, -0.25, 1.0, 0.75]
    m, lo90, hi90 = C.mean_interval(v, level=0.90)
    _, lo95, hi95 = C.mean_interval(v)
    assert lo95 < lo90 < m < hi90 < hi95
    assert m - lo90 == pytest.approx(hi90 - m)
    half = stats.t.ppf(0.95, 3) * np.std(v, ddof=1) / 2
    assert hi90 - m == pytest.approx(half)


def test_mean_interval_single_value_is_infinite():
    m, lo, hi = C.mean_interval([0.3])
    assert m == 0.3 and lo == -math.inf and hi == math.inf


def test_verdicts():
    assert C.verdict_paired([0.10, 0.11, 0.12, 0.10, 0.09]) == "reproduced"
    assert C.verdict_paired([0.5, -0.4, 0.3]) == "partly"  # mean 0.133, interval contains 0
    assert C.verdict_paired([-0.1, -0.2, 0.05]) == "not reproduced"
    assert C.verdict_paired([0.0, 0.0, 0.0]) == "not reproduced"
    assert C.verdict_paired([5.0]) == "partly"
    assert C.verdict_paired([-5.0]) == "not reproduced"
    assert C.verdict_boolean(True) == "reproduced" and C.verdict_boolean(False) == "not reproduced"


@pytest.mark.parametrize("value", [0.0, 1e-9, 1.0, 100.0])
def test_single_value_is_never_reproduced(value):
    assert C.verdict_paired([value]) != "reproduced"


def test_paired_claim_fields():
    c = C.paired_claim("A beats B", "> 0", np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), "smoke", deck="slide 3")
    m, lo, hi = C.mean_interval([0.1, 0.2, 0.3])
    # sd = 0.1, lo = 0.2 - 4.303 * 0.1 / sqrt(3) = -0.048 < 0 < mean: right direction, unresolved
    assert lo == pytest.approx(0.2 - 4.302652729911275 * 0.1 / math.sqrt(3))
    assert c.verdict == "partly"
    assert c.interval == pytest.approx([lo, hi])
    assert c.seeds == [0, 1, 2] and c.evidence == pytest.approx([0.1, 0.2, 0.3]) and c.rule == "paired"
    assert "+0.200" in c.our_value and "3 seeds" in c.our_value


def test_paired_claim_single_seed_has_no_interval():
    c = C.paired_claim("A beats B", "> 0", [0.4], [7], "smoke", kind="ours")
    c5 = C.paired_claim("A beats B", "> 0", [0.10, 0.11, 0.12, 0.10, 0.09], range(5), "smoke", kind="ours")
    assert c5.verdict == "reproduced"
    assert c.interval is None and c.verdict == "partly" and "[" not in c.our_value


def test_invalid_verdict_raises():
    with pytest.raises(ValueError, match="verdict"):
        C.Claim("x", "y", "z", "maybe", deck="slide 1")


def test_ledger_round_trip(tmp_path):
    ledger = [
        C.Claim("exact claim", "yes", "yes", "reproduced", rule="exact", profile="smoke", deck="slide 2"),
        C.paired_claim("A beats B", "> 0", [0.5, -0.4, 0.3], [0, 1, 2], "smoke", kind="ours"),
        C.Claim("bad claim", "> 0", "-0.1", "not reproduced", [3], [-0.5, 0.2], "book", [-0.1], kind="check"),
        C.paired_claim("A no worse than B", "> -0.01", [0.0, 0.0, 0.0], [0, 1, 2], "smoke", deck="table 1",
                       tolerance=0.01),
    ]
    path = C.write_ledger("toy", ledger, tmp_path / "out")
    assert path == tmp_path / "out" / "toy.claims.json"
    assert not list((tmp_path / "out").glob("*.tmp"))
    back = C.read_ledger(path)
    assert back == ledger
    assert C.table(back)["verdict"].tolist() == ["reproduced", "partly", "not reproduced", "indistinguishable"]


def test_write_ledger_uses_output_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PARAMSPACE_OUTPUT_DIR", str(tmp_path))
    path = C.write_ledger("toy", [C.Claim("c", "r", "o", "partly", kind="ours")])
    assert path == tmp_path / "toy.claims.json" and C.read_ledger(path)[0].verdict == "partly"


def test_scorecard_counts_verdicts_and_skips_chapters_without_claims(tmp_path):
    from paramspace import reports

    name = "parameter_relevance"
    C.write_ledger(name, [C.Claim("a", "r", "o", "reproduced", profile="book", deck="s1"),
                          C.Claim("b", "r", "o", "not reproduced", profile="book", deck="s2"),
                          C.Claim("c", "r", "o", "not reproduced", profile="book", deck="s3"),
                          # not claimed by the deck: listed apart, never counted as "not reproduced"
                          C.Claim("d", "—", "o", "not reproduced", profile="book", kind="ours"),
                          C.Claim("e", "—", "o", "not reproduced", profile="book", kind="check"),
                          C.Claim("f", "r", "o", "not reproduced", profile="book", deck="s4", timing=True)],
                    tmp_path)
    rows = {r["report"]: r for r in C.scorecard(tmp_path, stamped=False)}  # no run stamps in this folder
    assert rows[name]["claims"] == 3 and rows[name]["reproduced"] == 1 and rows[name]["not reproduced"] == 2
    assert (rows[name]["ours"], rows[name]["check"], rows[name]["timing"]) == (1, 1, 1)
    no_claims = [n for n, r in reports.REPORTS.items() if not r.claims]
    assert "compression_leaderboard" in no_claims
    assert not set(no_claims) & set(rows)
    card = C.write_scorecard(tmp_path, stamped=False).read_text()
    assert f"</reports/{name}>` | 3 | 1 | 0 | 2 | 0 | 0 | 1 / 1 / 1 | `book` |" in card
    assert "| **all reports** | **3** | **1** | **0** | **2** | **0** | **0** | 1 / 1 / 1 | |" in card
    assert "no ledger yet" in card  # the other reports have none in this directory
    assert reports.REPORTS["compression_leaderboard"].title not in card


def test_verdict_phrase_states_mean_and_interval():
    up = C.paired_claim("A beats B", "> 0", [0.10, 0.11, 0.12, 0.10, 0.09], range(5), "smoke", kind="ours")
    assert C.verdict_phrase(up, " pp", "{:+.2f}") == "**reproduced**: mean +0.10 pp, and the 95% interval lies above 0"
    mixed = C.paired_claim("A beats B", "> 0", [0.1, 0.2, 0.3], range(3), "smoke", kind="ours")
    lo, hi = mixed.interval
    assert C.verdict_phrase(mixed) == (f"**partly**: the mean +0.2 points the claimed way, but the 95% interval "
                                       f"[{lo:+.3g}, {hi:+.3g}] includes 0")
    down = C.paired_claim("A beats B", "> 0", [-0.5, 0.1], range(2), "smoke", kind="ours")
    assert C.verdict_phrase(down, "%") == "**not reproduced**, because the mean difference -0.2% is not positive"


def test_report_row_needs_a_deck_reference_and_a_known_kind():
    with pytest.raises(ValueError, match="deck"):
        C.Claim("claim of the report", "3.1", "3.0", "reproduced")
    with pytest.raises(ValueError, match="deck"):
        C.paired_claim("claim of the report", "> 0", [0.1, 0.2], [0, 1], "smoke")
    with pytest.raises(ValueError, match="kind"):
        C.Claim("x", "y", "z", "reproduced", kind="mine")
    assert C.paired_claim("ours", "—", [0.1, 0.2], [0, 1], "smoke", kind="ours").kind == "ours"


def test_indistinguishable_when_only_the_tolerance_passes_equal_quantities():
    # identical quantities on every seed: "no worse within 0.005" passes only through the tolerance
    c = C.paired_claim("W2 no worse", "> 0", [0.0, 0.0, 0.0], [0, 1, 2], "smoke", deck="s", tolerance=0.005)
    assert c.verdict == "indistinguishable" and c.same and c.margin is None and not c.borderline
    assert C.rule_verdict(c) == c.verdict
    # differences within numerical noise count as equal
    c = C.paired_claim("x", "> 0", [1e-12, -1e-12], [0, 1], "smoke", deck="s", tolerance=0.01)
    assert c.verdict == "indistinguishable"
    # the caller can say the compared objects are the same (two clusterings = one partition)
    c = C.paired_claim("x", "> 0", [0.001, 0.002, 0.003], [0, 1, 2], "smoke", deck="s", tolerance=0.01, same=True)
    assert c.verdict == "indistinguishable"
    # different quantities: the ordinary rule on d + tolerance
    c = C.paired_claim("x", "> 0", [-0.001, 0.002, 0.0], [0, 1, 2], "smoke", deck="s", tolerance=0.01)
    assert c.verdict == "reproduced" and not c.same
    assert c.evidence == pytest.approx([0.009, 0.012, 0.01])
    # without a tolerance equal quantities do not beat one another
    c = C.paired_claim("x", "> 0", [0.0, 0.0], [0, 1], "smoke", deck="s")
    assert c.verdict == "not reproduced" and c.same
    with pytest.raises(ValueError, match="indistinguishable"):
        C.Claim("x", "r", "o", "indistinguishable", deck="s")


def test_margin_in_standard_errors_by_hand():
    # d = [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); z = 2 sqrt(3) = 3.464; t = 4.303 -> margin 0.838
    z, t = 2 * math.sqrt(3), stats.t.ppf(0.975, 2)
    assert C.margin_se([1.0, 2.0, 3.0]) == pytest.approx(min(z, t - z))
    c = C.paired_claim("x", "> 0", [1.0, 2.0, 3.0], [0, 1, 2], "smoke", kind="ours")
    assert c.verdict == "partly" and c.borderline  # 0.84 SE from becoming reproduced
    # far from both boundaries
    c = C.paired_claim("x", "> 0", [0.10, 0.11, 0.12, 0.10, 0.09], range(5), "smoke", kind="ours")
    z = 0.104 / (np.std([0.10, 0.11, 0.12, 0.10, 0.09], ddof=1) / math.sqrt(5))
    assert c.margin == pytest.approx(z - stats.t.ppf(0.975, 4)) and not c.borderline
    assert C.margin_se([0.3]) is None and C.margin_se([0.2, 0.2]) == math.inf and C.margin_se([0.0, 0.0]) == 0.0
    assert C.exact_claim("x", "y", "z", True, "smoke", kind="check").margin is None


def test_markdown_table_shows_kind_deck_margin_and_timing():
    rows = [C.paired_claim("A beats B", "76.65 vs 74.77", [0.1, 0.2, 0.3], [0, 1, 2], "smoke", deck="table 3"),
            C.exact_claim("generator check", "—", "ok", True, "smoke", kind="check"),
            C.paired_claim("cheaper", "lower cost", [0.1, 0.2, 0.3], [0, 1, 2], "smoke", deck="slide 9", timing=True)]
    md = C.markdown_table(rows).splitlines()
    assert md[0] == "| claim | kind | in the deck | the report | measured here | margin (SE) | verdict |"
    assert md[2].startswith("| A beats B | the report | table 3 | 76.65 vs 74.77 |")
    assert "| self-check | — |" in md[3] and "n/a" in md[3]
    assert md[4].endswith("**partly** (timing; not counted) |")


def test_tolerances_markdown_lists_our_tolerances():
    md = C.tolerances_markdown({"drop_tol_pp": 1.0, "x": 2}, {"drop_tol_pp": "largest drop that is no loss"})
    assert "| `drop_tol_pp` | 1.0 | largest drop that is no loss |" in md
    with pytest.raises(KeyError, match="nope"):
        C.tolerances_markdown({}, {"nope": "x"})


def test_titled_table_wraps_a_markdown_table_in_a_numbered_directive():
    from paramspace.pages import titled_table

    md = titled_table("Claims and verdicts", "tab-claims", "| a |\n|---|\n| 1 |\n")
    assert md == ":::{table} Claims and verdicts\n:name: tab-claims\n\n| a |\n|---|\n| 1 |\n:::\n"
    # a wide table: the same directive inside a block of the page's wide classes (a longer fence)
    wide = titled_table("Claims and verdicts", "tab-claims", "| a |\n|---|\n| 1 |\n", wide=True)
    assert wide == "::::{div} full-width wide-table\n" + md + "::::\n"
    with pytest.raises(ValueError, match="name"):
        titled_table("t", "bad name", "| a |")
    with pytest.raises(ValueError, match="Markdown table"):
        titled_table("t", "tab-x", "not a table")
