"""Concurrent approvals and audit writes on PostgreSQL, each thread with its own connection and transaction."""

import threading

import pytest
from django.db import connection

from config.errors import DomainError
from releases.audit.chain import AuditTarget, audit_record
from releases.audit.sealer import audit_seal
from releases.audit.verify import audit_verify
from releases.governance import stage_requests
from releases.models import AuditEvent, StageChange, StageChangeRequest, StageDecision
from releases.stage_names import Stage
from tests.releases.conftest import make_size, request_change

APPROVERS = 50  # concurrent approvals of one request


def _race(count: int, work) -> list:
    """Run work(i) in `count` threads released together; return what each returned or raised."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_apply_the_change_exactly_once(django_user_model, policy_staff_group, settings):
    settings.STAGEGATE_APPROVALS_REQUIRED = {"public": 2}
    requester = django_user_model.objects.create_user("alice", email="alice@example.org")
    requester.groups.add(policy_staff_group)
    approvers = []
    for i in range(APPROVERS):
        user = django_user_model.objects.create_user(f"approver{i}", email=f"approver{i}@example.org")
        user.groups.add(policy_staff_group)
        approvers.append(user)
    size = make_size()
    request = request_change(size, requester, Stage.PUBLIC)

    results = _race(APPROVERS, lambda i: stage_requests.stage_request_approve(
        request=StageChangeRequest.objects.get(pk=request.pk), approver=approvers[i]))

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)]
    assert unexpected == []
    size.refresh_from_db()
    request.refresh_from_db()
    assert size.stage == Stage.PUBLIC
    assert request.status == StageChangeRequest.Status.APPLIED
    assert StageChange.objects.filter(model_size=size).count() == 1
    assert AuditEvent.objects.filter(action="stage.applied").count() == 1
    assert StageDecision.objects.filter(request=request).count() == 2  # the rest found it decided
    assert sum(1 for r in results if isinstance(r, DomainError)) == APPROVERS - 2
    assert audit_verify(copies=False).ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_sealers_seal_every_event_exactly_once(alice):
    target = AuditTarget(type="test", id="1", label="race")

    def write_or_seal(i: int):
        if i % 4 == 3:
            return audit_seal()
        return audit_record(actor=alice, action="test.race", target=target, data={"i": i})

    results = _race(20, write_or_seal)
    assert not [r for r in results if isinstance(r, Exception)]
    audit_seal()
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, 16))
    report = audit_verify(copies=False)
    assert (report.events, report.problem) == (15, None)
