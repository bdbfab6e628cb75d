"""Publishing output datasets is a release decision: staff only, audited, explicit for unreleased sizes."""

import pytest

from registry import services as registry_services
from registry.models import ModelSize, OutputDataset
from releases.governance.dataset_publication import (
    PublicationConflict,
    UnreleasedSizeNeedsDecision,
    dataset_publish,
    dataset_unpublish,
)
from releases.governance.errors import InvalidStageRequest
from releases.models import AuditEvent
from releases.roles import NotPolicyStaff
from releases.stage_names import Stage


@pytest.fixture
def size(db):
    family = registry_services.family_upsert(slug="fam", name="Family")
    return registry_services.model_size_upsert(
        family=family, slug="fam-s", display_name="s",
        hparams={"n_vocab": 256, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2})


@pytest.fixture
def dataset(size):
    return OutputDataset.objects.create(name="fam-s", kind="generated", model_size=size, max_length=32,
                                        sampling={"temperature": 1.0, "top_k": 0, "top_p": 1.0})


def _public(size):
    ModelSize.objects.filter(pk=size.pk).update(stage=Stage.PUBLIC)  # stage path itself is tested elsewhere


def test_policy_staff_publish_samples_of_a_public_size(dataset, size, alice):
    _public(size)
    dataset_publish(dataset=dataset, actor=alice, ip="127.0.0.9")
    dataset.refresh_from_db()
    assert dataset.published_at is not None
    event = AuditEvent.objects.get(action="dataset.published")
    assert (event.actor_label, event.target_label, event.ip) == ("alice", "fam-s", "127.0.0.9")
    assert event.data["size_stage"] == "public"


def test_samples_of_an_unreleased_size_need_an_explicit_decision(dataset, alice):
    with pytest.raises(UnreleasedSizeNeedsDecision) as excinfo:
        dataset_publish(dataset=dataset, actor=alice)
    assert excinfo.value.as_json()["stage"] == "internal"
    with pytest.raises(InvalidStageRequest):
        dataset_publish(dataset=dataset, actor=alice, despite_unreleased_size=True, reason="ok")
    dataset_publish(dataset=dataset, actor=alice, despite_unreleased_size=True,
                    reason="Detection researchers need samples of the larger size before its weights are released.")
    event = AuditEvent.objects.get(action="dataset.published")
    assert event.data["despite_unreleased_size"] is True and "Detection researchers" in event.reason


def test_only_policy_staff_publish(dataset, size, admin_user, rita):
    _public(size)
    for actor in (admin_user, rita):
        with pytest.raises(NotPolicyStaff):
            dataset_publish(dataset=dataset, actor=actor)
    dataset.refresh_from_db()
    assert dataset.published_at is None and not AuditEvent.objects.filter(action="dataset.published").exists()


def test_publishing_twice_is_a_conflict(dataset, size, alice):
    _public(size)
    dataset_publish(dataset=dataset, actor=alice)
    with pytest.raises(PublicationConflict):
        dataset_publish(dataset=dataset, actor=alice)
    assert AuditEvent.objects.filter(action="dataset.published").count() == 1


def test_unpublishing_needs_a_reason_and_is_audited(dataset, size, alice, bob):
    _public(size)
    dataset_publish(dataset=dataset, actor=alice)
    with pytest.raises(InvalidStageRequest):
        dataset_unpublish(dataset=dataset, actor=bob, reason="")
    dataset_unpublish(dataset=dataset, actor=bob,
                      reason="The size was withdrawn and its samples reveal the withdrawn behaviour.")
    dataset.refresh_from_db()
    assert dataset.published_at is None
    assert AuditEvent.objects.filter(action="dataset.unpublished", actor_label="bob").exists()
