"""API tokens on every request: a live token authenticates, an expired one is refused and deleted."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken


def test_a_live_token_authenticates_and_an_expired_one_is_refused_and_deleted(alice, api):
    live_token, live_key = AuthToken.objects.create(user=alice, expiry=timedelta(days=1))
    old_token, old_key = AuthToken.objects.create(user=alice, expiry=timedelta(days=1))
    AuthToken.objects.filter(pk=old_token.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    api.credentials(HTTP_AUTHORIZATION=f"Token {live_key}")
    assert api.get(reverse("stage-request-list")).status_code == 200

    api.credentials(HTTP_AUTHORIZATION=f"Token {old_key}")
    response = api.get(reverse("stage-request-list"))
    assert response.status_code == 401
    assert not AuthToken.objects.filter(pk=old_token.pk).exists()
    assert AuthToken.objects.filter(pk=live_token.pk).exists()


def test_a_wrong_key_with_a_real_tokens_prefix_is_refused(alice, api):
    _token, key = AuthToken.objects.create(user=alice, expiry=timedelta(days=1))
    forged = key[:15] + ("0" if key[15] != "0" else "1") + key[16:]
    api.credentials(HTTP_AUTHORIZATION=f"Token {forged}")
    assert api.get(reverse("stage-request-list")).status_code == 401


def test_expired_tokens_are_deleted_by_the_daily_task_and_hidden_from_the_portal(pat):
    from releases.tasks import delete_expired_tokens_task
    from web.portal.views import portal_overview

    live, _key = AuthToken.objects.create(user=pat, expiry=timedelta(days=1))
    expired, _key = AuthToken.objects.create(user=pat, expiry=timedelta(days=1))
    AuthToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(minutes=1))
    assert [t.pk for t in portal_overview(user=pat).tokens] == [live.pk]
    assert delete_expired_tokens_task() == 1
    assert list(AuthToken.objects.values_list("pk", flat=True)) == [live.pk]


def test_leaving_the_policy_staff_group_takes_effect_on_the_next_request(alice, api):
    # is_policy_staff caches on the user object; each request authenticates a fresh one.
    from django.contrib.auth.models import Group

    from releases.roles import POLICY_STAFF_GROUP

    _token, key = AuthToken.objects.create(user=alice, expiry=timedelta(days=1))
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(reverse("stage-request-list")).status_code == 200
    alice.groups.remove(Group.objects.get(name=POLICY_STAFF_GROUP))
    assert api.get(reverse("stage-request-list")).status_code == 403
