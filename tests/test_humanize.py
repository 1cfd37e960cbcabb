from plastic.humanize import duration_text


def test_duration_text_picks_the_unit_at_90_seconds_and_90_minutes():
    assert duration_text(0) == "0 s"
    assert duration_text(89.4) == "89 s"
    assert duration_text(90) == "2 min"  # 1.5 min, rounded half to even
    assert duration_text(725) == "12 min"
    assert duration_text(5399) == "90 min"
    assert duration_text(5400) == "1.5 h"
    assert duration_text(6.1 * 3600) == "6.1 h"
