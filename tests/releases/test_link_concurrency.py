"""Links under concurrency on PostgreSQL: quotas at the boundary and revocations racing link requests.

Threads use their own database connections (transactional_db), as concurrent web requests would.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from releases.access import grants, links
from releases.access.errors import AccessDenied, QuotaExhausted
from releases.models import AuditEvent, IssuedLink
from tests.releases.conftest import make_grant, make_partner, move, publish_terms, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def partner_size(s3, size, alice, bob, pat, tmp_path):
    upload(size, tmp_path)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    move(size, "partners", requester=alice, approvers=[bob])
    return partner


def _in_thread(target, results: list, *args):
    def run():
        try:
            results.append(target(*args))
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_concurrent_requests_at_a_quota_boundary_never_exceed_it(partner_size, size, alice, pat):
    make_grant(partner_size, size, alice, quota_links=3, quota_period_s=3600)
    start = threading.Barrier(8)
    results: list = []

    def issue():
        start.wait(timeout=10)
        return links.link_issue(user=pat, size=size, filename="model.safetensors", ip="192.0.2.1")

    threads = [_in_thread(issue, results) for _ in range(8)]
    for thread in threads:
        thread.join(timeout=60)
    issued = [r for r in results if isinstance(r, links.Link)]
    refused = [r for r in results if isinstance(r, QuotaExhausted)]
    assert len(results) == 8, results
    assert (len(issued), len(refused)) == (3, 5), results
    assert IssuedLink.objects.count() == 3
    assert AuditEvent.objects.filter(action="link.issued").count() == 3


def test_a_link_requested_while_a_revocation_commits_waits_and_is_refused(partner_size, size, alice, pat):
    grant = make_grant(partner_size, size, alice)
    revoked, release = threading.Event(), threading.Event()

    def revoke():
        with transaction.atomic():
            grants.grant_revoke(grant=grant, actor=alice, reason="Breach reported.")
            revoked.set()
            release.wait(timeout=10)  # hold the revocation uncommitted

    revoker_results: list = []
    revoker = _in_thread(revoke, revoker_results)
    assert revoked.wait(timeout=10)
    link_results: list = []
    requester = _in_thread(lambda: links.link_issue(user=pat, size=size, filename="model.safetensors"),
                           link_results)
    time.sleep(0.5)
    assert requester.is_alive(), "the link request must wait for the grant row the revocation holds"
    release.set()
    revoker.join(timeout=10)
    requester.join(timeout=30)
    assert revoker_results == [None]
    assert len(link_results) == 1 and isinstance(link_results[0], AccessDenied)
    assert link_results[0].code == "grant_revoked"
    assert IssuedLink.objects.count() == 0


def test_a_revocation_waits_for_a_link_being_issued_which_was_decided_before_it(partner_size, size, alice, pat):
    grant = make_grant(partner_size, size, alice)
    issued, release = threading.Event(), threading.Event()

    def issue():
        with transaction.atomic():
            link = links.link_issue(user=pat, size=size, filename="model.safetensors")
            issued.set()
            release.wait(timeout=10)
        return link

    link_results: list = []
    requester = _in_thread(issue, link_results)
    assert issued.wait(timeout=30)
    revoker_results: list = []
    revoker = _in_thread(lambda: grants.grant_revoke(grant=grant, actor=alice, reason="Breach."), revoker_results)
    time.sleep(0.5)
    assert revoker.is_alive(), "the revocation must wait for the link's transaction"
    release.set()
    requester.join(timeout=10)
    revoker.join(timeout=30)
    assert isinstance(link_results[0], links.Link)
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    # And from now on nothing more is issued.
    with pytest.raises(AccessDenied):
        links.link_issue(user=pat, size=size, filename="model.safetensors")
    assert IssuedLink.objects.count() == 1


def _link_with_a_change_before_its_locks(pat, size, change, monkeypatch) -> list:
    """Issue a link in a thread, and run `change` (committed) after the link has begun deciding but before
    it takes its locks; return what the link gave."""
    from releases.access import locks

    lock_rows, waiting, go = locks.access_rows_share, threading.Event(), threading.Event()

    def lock_after_the_change(user, size):
        waiting.set()
        assert go.wait(timeout=10)
        return lock_rows(user, size)

    monkeypatch.setattr(locks, "access_rows_share", lock_after_the_change)
    link_results: list = []
    requester = _in_thread(lambda: links.link_issue(user=pat, size=size, filename="model.safetensors"),
                           link_results)
    assert waiting.wait(timeout=30)  # the locked check has begun
    change()
    go.set()
    requester.join(timeout=30)
    return link_results


def test_a_revocation_stamped_after_a_link_began_deciding_but_committed_first_is_honoured(
        partner_size, size, alice, pat, monkeypatch):
    # The link has begun deciding when, before it has its locks, the revocation stamps a later moment and
    # commits. Deciding with a clock read before the wait would see `revoked_at` in the future and let the
    # link through, after the revocation's commit.
    grant = make_grant(partner_size, size, alice)
    link_results = _link_with_a_change_before_its_locks(
        pat, size, lambda: grants.grant_revoke(grant=grant, actor=alice, reason="Breach reported."), monkeypatch)
    assert len(link_results) == 1 and isinstance(link_results[0], AccessDenied), link_results
    assert link_results[0].code == "grant_revoked"
    assert IssuedLink.objects.count() == 0


def test_terms_that_come_into_force_while_a_link_waits_for_its_locks_must_be_accepted_first(
        partner_size, size, alice, pat, monkeypatch):
    # Everything `may` decides on is read after the lock wait, not only the grants the locks cover.
    make_grant(partner_size, size, alice)
    # In force from now; pat accepted only v1.
    link_results = _link_with_a_change_before_its_locks(pat, size, lambda: publish_terms(alice, "v2"), monkeypatch)
    assert len(link_results) == 1 and isinstance(link_results[0], AccessDenied), link_results
    assert link_results[0].code == "terms_not_accepted"
    assert IssuedLink.objects.count() == 0
