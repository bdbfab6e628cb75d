from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from releases.models import AuditEvent, TokenLabel


def test_it_prints_a_key_that_authenticates_the_api(alice, api):
    out = StringIO()
    call_command("create_token", "alice", "--name", "alice laptop", "--expires-days", "7", "--scope", "governance",
                 stdout=out)
    key = out.getvalue().strip()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.get(reverse("stage-request-list"))
    assert response.status_code == 200
    assert TokenLabel.objects.get().name == "alice laptop"
    assert AuditEvent.objects.filter(action="token.created", target_label="alice").exists()


def test_an_unknown_user_is_an_error(db):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("create_token", "nobody", stdout=StringIO())


def test_a_token_expires_and_revoked_tokens_stop_working(alice, api):
    from datetime import timedelta

    from django.utils import timezone
    from knox.models import AuthToken

    from releases.access import tokens

    out = StringIO()
    call_command("create_token", "alice", "--expires-days", "3", "--scope", "governance", stdout=out)
    token = AuthToken.objects.get()
    assert timedelta(days=2.9) < token.expiry - timezone.now() <= timedelta(days=3)
    api.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
    tokens.token_revoke(token=token, actor=alice)
    assert api.get(reverse("stage-request-list")).status_code == 401
    assert AuditEvent.objects.filter(action="token.revoked").exists()
