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
    c = C.paired_claim("A beats B", "> 0", np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), "smoke")
    m, lo, hi = C.mean_interval([0.1, 0.2, 0.3])
    # sd = 0.1, lo = 0.2 - 4.303 * 0.1 / sqrt(3) = -0.048 < 0 < mean: right direction, unresolved
    assert lo == pytest.approx(0.2 - 4.302652729911275 * 0.1 / math.sqrt(3))
    assert c.verdict == "partly"
    assert c.interval == pytest.approx([lo, hi])
    assert c.seeds == [0, 1, 2] and c.evidence == pytest.approx([0.1, 0.2, 0.3]) and c.rule == "paired"
    assert "+0.200" in c.our_value and "3 seeds" in c.our_value


def test_paired_claim_single_seed_has_no_interval():
    c = C.paired_claim("A beats B", "> 0", [0.4], [7], "smoke")
    c5 = C.paired_claim("A beats B", "> 0", [0.10, 0.11, 0.12, 0.10, 0.09], range(5), "smoke")
    assert c5.verdict == "reproduced"
    assert c.interval is None and c.verdict == "partly" and "[" not in c.our_value


def test_invalid_verdict_raises():
    with pytest.raises(ValueError, match="verdict"):
        C.Claim("x", "y", "z", "maybe")


def test_ledger_round_trip(tmp_path):
    ledger = [
        C.Claim("exact claim", "yes", "yes", "reproduced", rule="exact", profile="smoke"),
        C.paired_claim("A beats B", "> 0", [0.5, -0.4, 0.3], [0, 1, 2], "smoke"),
        C.Claim("bad claim", "> 0", "-0.1", "not reproduced", [3], [-0.5, 0.2], "book", [-0.1]),
    ]
    path = C.write_ledger("toy", ledger, tmp_path / "out")
    assert path == tmp_path / "out" / "toy.claims.json"
    assert not list((tmp_path / "out").glob("*.tmp"))
    back = C.read_ledger(path)
    assert back == ledger
    assert C.table(back)["verdict"].tolist() == ["reproduced", "partly", "not reproduced"]


def test_write_ledger_uses_output_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PARAMSPACE_OUTPUT_DIR", str(tmp_path))
    path = C.write_ledger("toy", [C.Claim("c", "r", "o", "partly")])
    assert path == tmp_path / "toy.claims.json" and C.read_ledger(path)[0].verdict == "partly"


def test_scorecard_counts_verdicts_and_skips_chapters_without_claims(tmp_path):
    from paramspace import profiles

    name = "parameter_relevance"
    C.write_ledger(name, [C.Claim("a", "r", "o", "reproduced", profile="book"),
                          C.Claim("b", "r", "o", "not reproduced", profile="book"),
                          C.Claim("c", "r", "o", "not reproduced", profile="book")], tmp_path)
    rows = {r["report"]: r for r in C.scorecard(tmp_path)}
    assert rows[name]["claims"] == 3 and rows[name]["reproduced"] == 1 and rows[name]["not reproduced"] == 2
    no_claims = [n for n, r in profiles.REPORTS.items() if not r.claims]
    assert "compression_leaderboard" in no_claims
    assert not set(no_claims) & set(rows)
    card = C.write_scorecard(tmp_path).read_text()
    assert f"</reports/{name}>` | 3 | 1 | 0 | 2 | `book` |" in card
    assert "no ledger yet" in card  # the other reports have none in this directory
    assert profiles.REPORTS["compression_leaderboard"].title not in card


def test_verdict_phrase_states_mean_and_interval():
    up = C.paired_claim("A beats B", "> 0", [0.10, 0.11, 0.12, 0.10, 0.09], range(5), "smoke")
    assert C.verdict_phrase(up, " pp", "{:+.2f}") == "**reproduced**: mean +0.10 pp, and the 95% interval lies above 0"
    mixed = C.paired_claim("A beats B", "> 0", [0.1, 0.2, 0.3], range(3), "smoke")
    lo, hi = mixed.interval
    assert C.verdict_phrase(mixed) == (f"**partly**: the mean +0.2 points the claimed way, but the 95% interval "
                                       f"[{lo:+.3g}, {hi:+.3g}] includes 0")
    down = C.paired_claim("A beats B", "> 0", [-0.5, 0.1], range(2), "smoke")
    assert C.verdict_phrase(down, "%") == "**not reproduced**, because the mean difference -0.2% is not positive"
