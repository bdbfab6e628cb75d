"""Numbers on the pages as people read them (issue #20, defects 11, 13 and 15)."""

import pytest

from web.templatetags.for_people import duration, per_duration, percent, thousands


@pytest.mark.parametrize(("fraction", "shown"), [
    (0.995, "99.5%"), (1, "100%"), (0.9996, "99.9%"), (0.5, "50%"), (0, "0%"), (0.0004, "0%"), (None, "–")])
def test_a_percentage_never_rounds_up_to_all(fraction, shown):
    assert percent(fraction) == shown


@pytest.mark.parametrize(("seconds", "shown", "after_per"), [
    (86400, "1 day", "day"), (7200, "2 hours", "2 hours"), (90, "90 seconds", "90 seconds"),
    (604800, "1 week", "week"), (3600, "1 hour", "hour"), (5400, "90 minutes", "90 minutes")])
def test_durations_in_the_largest_whole_unit(seconds, shown, after_per):
    assert (duration(seconds), per_duration(seconds)) == (shown, after_per)


def test_thousands_separators():
    assert thousands(124439808) == "124,439,808" and thousands("x") == "x"


@pytest.mark.django_db
def test_the_pages_use_them(client, datasets):
    html = client.get("/datasets/mini-1m-k40/").content.decode()
    assert "% of samples reached end-of-text" in html and "(fraction" not in html
    size = datasets["mini-1m-k40"].model_size
    html = client.get(f"/models/{size.slug}/").content.decode()
    assert f"{size.parameter_count:,} parameters" in html and size.parameter_count > 999
