"""Report wording follows the numbers: the largest ΔASR is called a rise or a fall by its sign."""

from workbench.analysis.report import findings


def _deltas(values):
    return [{"family": "behaviour", "behaviour": f"b{i}", "coefficient": 1.0, "delta_asr": v,
             "p_holm": 1.0, "p_value": 1.0, "verdict": "no effect"} for i, v in enumerate(values)]


def _first(values):
    return findings(_deltas(values), [])[0]


def test_largest_fall_is_not_called_an_increase():
    text = _first([-0.60, -0.10])  # the case: -60.0 to -10.0 pp
    assert "-60.0 to -10.0 pp" in text and "largest fall: b0 at coefficient +1" in text
    assert "increase" not in text and "rise" not in text


def test_largest_rise():
    text = _first([-0.10, 0.45])
    assert "largest rise: b1 at coefficient +1" in text and "fall" not in text


def test_a_larger_fall_beats_a_smaller_rise():
    assert "largest fall: b0" in _first([-0.5, 0.2])


def test_no_change_is_neither():
    text = _first([0.0, 0.0])
    assert "largest change" in text and "rise" not in text and "fall" not in text
