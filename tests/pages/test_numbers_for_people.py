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


def test_the_detection_charts_legend_covers_no_bar_and_names_the_chance_line():
    """Issue #20, defect 12: the legend hid the top-k 40 bar; the 50% line had no label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from web.plots import _SIZE_IN, detection_accuracy

    figure = Figure(figsize=_SIZE_IN)
    FigureCanvasAgg(figure)
    detection_accuracy(rows=[("mini-1m", 0.71, 0.93), ("mini-3m", 0.65, 0.99), ("mini-7m", 0.6, 0.97)])(figure)
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    legend = ax.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["chance (50%)", "pure sampling", "top-k 40"]
    box = legend.get_window_extent(renderer)
    bars = [patch.get_window_extent(renderer) for patch in ax.patches]
    assert len(bars) == 6 and not any(box.overlaps(bar) for bar in bars)


def test_backticks_in_messages_become_code_and_nothing_else_is_markup():
    from web.templatetags.for_people import code_spans

    assert code_spans("send `Authorization: Token <key>` now") == \
        "send <code>Authorization: Token &lt;key&gt;</code> now"
    assert code_spans("<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"


@pytest.mark.django_db
def test_a_refusal_on_a_size_page_shows_no_literal_backticks(client, s3, alice, bob, tmp_path):
    from tests.releases.conftest import make_size, move, upload

    size = make_size("mini-3m")
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    html = client.get("/models/mini-3m/").content.decode()
    assert "<code>Authorization: Token &lt;key&gt;</code>" in html and "`" not in html
