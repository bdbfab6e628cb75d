"""What stage was each size in, and who could download it, on a given date."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from registry.models import ModelSize
from releases.governance import selectors
from releases.stage_names import Stage
from tests.releases.conftest import move


@pytest.fixture
def gpt2(db):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    return {size.slug: size for size in ModelSize.objects.all()}


def _on(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=23, minute=59, tzinfo=UTC)


def test_stage_of_each_gpt2_size_through_2019(gpt2):
    def stages(day):
        return [selectors.stage_on(size=gpt2[s], when=_on(day)) for s in
                ("gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1558m")]

    assert stages("2019-01-01") == ["internal", "internal", "internal", "internal"]
    assert stages("2019-03-01") == ["public", "internal", "internal", "internal"]
    assert stages("2019-06-01") == ["public", "public", "partners", "internal"]
    assert stages("2019-09-01") == ["public", "public", "public", "partners"]
    assert stages("2019-12-01") == ["public", "public", "public", "public"]


def test_who_could_download_follows_the_stage(gpt2):
    on = _on("2019-09-01")
    assert selectors.who_could_download(size=gpt2["gpt2-774m"], when=on).audience == "everyone"
    partners = selectors.who_could_download(size=gpt2["gpt2-1558m"], when=on)
    assert partners.audience == "partners_with_grants"
    assert partners.grantees == []  # no partner held a grant for it then
    assert selectors.who_could_download(size=gpt2["mini-1m"], when=on).audience == "staff_only"


def test_a_withdrawn_size_was_staff_only_from_its_withdrawal(size, alice, bob, carol):
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    move(size, Stage.WITHDRAWN, requester=bob, approvers=[carol])
    now = datetime.now(UTC)
    assert selectors.who_could_download(size=size, when=now).audience == "staff_only"
    assert selectors.stage_on(size=size, when=now) == Stage.WITHDRAWN


def test_release_state_lists_every_size(gpt2):
    rows = selectors.release_state_on(when=_on("2019-06-01")).sizes
    assert {row.size.slug: row.stage for row in rows}["gpt2-774m"] == "partners"
    assert len(rows) == len(gpt2)
