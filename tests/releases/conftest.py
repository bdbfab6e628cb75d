"""Fixtures for release-governance tests: sizes made through the registry's services, eager Celery."""

import pytest
from knox.models import AuthToken

from registry import revisions
from registry import services as registry_services
from releases.governance import stage_requests
from releases.governance.factors import FACTORS
from tests.weights import gpt2_safetensors

RATIONALE = "Detection research and partner reports show no strong evidence of misuse at this size so far."
ALL_FACTORS = {key: f"Assessment of {key.replace('_', ' ')}." for key in FACTORS}


@pytest.fixture(autouse=True)
def eager_celery():
    """Run tasks in-process, so emails and webhooks queued after commit happen within the test."""
    from config.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


HPARAMS = {"n_vocab": 512, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}


def make_size(slug: str = "mini-1m", family_slug: str = "mini"):
    family = registry_services.family_upsert(slug=family_slug, name=family_slug.title())
    return registry_services.model_size_upsert(family=family, slug=slug, display_name=slug, hparams=HPARAMS)


@pytest.fixture
def size(db):
    """A size in `internal`, as every size begins."""
    return make_size()


def request_change(size, requester, to_stage: str, **kwargs):
    kwargs.setdefault("rationale", RATIONALE)
    kwargs.setdefault("factors", ALL_FACTORS)
    return stage_requests.stage_request_create(size=size, requester=requester, to_stage=to_stage, **kwargs)


def move(size, to_stage: str, *, requester, approvers):
    """Take a size to a stage through the real request and approvals."""
    request = request_change(size, requester, to_stage)
    for approver in approvers:
        request = stage_requests.stage_request_approve(request=request, approver=approver)
    size.refresh_from_db()
    assert size.stage == to_stage
    return request


def move_dataset(dataset, to_stage: str, *, requester, approvers):
    """Take an output dataset to a stage through the real request and approvals."""
    request = stage_requests.stage_request_create(dataset=dataset, requester=requester, to_stage=to_stage,
                                                  rationale=RATIONALE, factors=ALL_FACTORS)
    for approver in approvers:
        request = stage_requests.stage_request_approve(request=request, approver=approver)
    dataset.refresh_from_db()
    assert dataset.stage == to_stage
    return request


def token_for(user) -> str:
    return AuthToken.objects.create(user=user)[1]


# --------------------------------------------------------------------------- partners and downloads
WEIGHTS = gpt2_safetensors(HPARAMS)  # 88 KiB: a well-formed file of random F16 weights for make_size's sizes
CONFIG = b'{"model_type": "gpt2", "n_layer": 2}'


@pytest.fixture
def pat(django_user_model):
    """A member of Example Security Lab (once the `partner` fixture adds him)."""
    return django_user_model.objects.create_user(username="pat", password="pw-pat", email="pat@example.org")


def make_partner(actor, *members, name: str = "Example Security Lab", kind: str = "security"):
    from releases.access import partners

    partner = partners.partner_create(name=name, kind=kind, actor=actor, contact_email="lab@example.org")
    for member in members:
        partners.partner_member_add(partner=partner, user=member, actor=actor)
    return partner


def publish_terms(actor, version: str = "v1", *accepting):
    from releases.access import partners

    terms = partners.terms_publish(version=version, text=f"Partner terms {version}: no redistribution.", actor=actor)
    for user in accepting:
        partners.terms_accept(user=user, terms=terms)
    return terms


def make_grant(partner, size, actor, *, days: float = 30, starts_in_days: float = 0, **kwargs):
    from datetime import timedelta

    from django.utils import timezone

    from releases.access import grants

    starts_at = timezone.now() + timedelta(days=starts_in_days)
    return grants.grant_create(partner=partner, size=size, purpose="Red-team the size for misuse.", actor=actor,
                               starts_at=starts_at, expires_at=starts_at + timedelta(days=days), **kwargs)


def upload(size, tmp_path, filename: str = "model.safetensors", data: bytes = WEIGHTS):
    path = tmp_path / filename
    path.write_bytes(data)
    return revisions.artifact_register(size=size, path=path)
