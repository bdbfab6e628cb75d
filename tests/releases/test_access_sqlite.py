"""The link path on SQLite, the demo's database: `may` reads its facts and the audit trail its head in
hand-written SQL, which the rest of the suite runs on PostgreSQL only. A fresh process migrates a scratch
SQLite file, asks `may` about each kind of caller with and without the locked read, issues a link to a
file in the session's SeaweedFS and verifies the audit chain."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json
import os
from datetime import timedelta
from pathlib import Path

import django

django.setup()
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

call_command("migrate", verbosity=0)
assert connection.vendor == "sqlite", connection.vendor

from registry import revisions
from registry import services as registry_services
from registry import storage
from releases.access import grants, links, partners, rules as access
from releases.audit.verify import audit_verify
from releases.models import AuditEvent
from registry.models import ModelSize
from releases.roles import POLICY_STAFF_GROUP

staff = User.objects.create_user("alice")
staff.groups.add(Group.objects.get_or_create(name=POLICY_STAFF_GROUP)[0])
pat, quinn, rita, uma = (User.objects.create_user(name) for name in ("pat", "quinn", "rita", "uma"))
family = registry_services.family_upsert(slug="f", name="F")
hparams = {"n_vocab": 512, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}
size = registry_services.model_size_upsert(family=family, slug="f-1m", display_name="1m", hparams=hparams)
lab = partners.partner_create(name="Lab", kind="security", actor=staff, contact_email="lab@example.org")
for member in (pat, quinn, uma):
    partners.partner_member_add(partner=lab, user=member, actor=staff)
terms = partners.terms_publish(version="v1", text="Terms.", actor=staff)
for member in (pat, uma):
    partners.terms_accept(user=member, terms=terms)
now = timezone.now()
grant = grants.grant_create(partner=lab, size=size, purpose="Red-team it.", actor=staff, starts_at=now,
                            expires_at=now + timedelta(days=1), quota_links=1, quota_period_s=3600)


def reasons(user):
    unlocked = access.may(user, size, access.DOWNLOAD, filename="model.safetensors")
    with transaction.atomic():
        locked = access.may(user, size, access.DOWNLOAD, filename="model.safetensors", lock=True)
    return [unlocked.reason, locked.reason]


storage.ensure_bucket()
weights = Path(os.environ["WEIGHTS_PATH"])
revisions.artifact_register(size=size, path=weights)  # while internal: a released size's files never change
answers = {}
size.revisions.update(stage="partners")  # `may` reads the revision's stage from the database
for name, user in (("staff", staff), ("member", pat), ("no_terms", quinn), ("stranger", rita), ("anonymous", None)):
    answers[name] = reasons(user)
allowed = access.may(pat, size, access.DOWNLOAD)
answers["grant_window"] = [allowed.grant.starts_at.isoformat(), allowed.grant.expires_at.isoformat(),
                           allowed.terms.version, allowed.partner.name]
link = links.link_issue(user=pat, size=size, filename="model.safetensors")
answers["link"] = [link.record.basis, link.record.grant_id == grant.pk, link.url.startswith("http")]
try:
    links.link_issue(user=pat, size=size, filename="model.safetensors")
except Exception as error:  # the grant's quota is one link an hour
    answers["second_link"] = getattr(error, "code", type(error).__name__)
report = audit_verify(copies=False)
answers["audit"] = [report.events, report.problem, AuditEvent.objects.count(),
                    list(AuditEvent.objects.order_by("-seq").values_list("action", flat=True)[:1])]
grants.grant_revoke(grant=grant, actor=staff, reason="Breach.")
answers["revoked"] = reasons(uma)
size.revisions.update(stage="public")
answers["public"] = reasons(None)
print("ANSWERS " + json.dumps(answers))
"""


def test_the_link_path_runs_on_sqlite(tmp_path, s3_server):
    from tests.weights import gpt2_safetensors

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(gpt2_safetensors({"n_vocab": 512, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}))
    env = {**os.environ, **s3_server.env(), "WEIGHTS_PATH": str(weights),
           "DJANGO_SETTINGS_MODULE": "config.settings.base", "STAGEGATE_IGNORE_RUN_ENV": "1",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "CELERY_TASK_ALWAYS_EAGER": "1",
           "STAGEGATE_CACHE_DIR": str(tmp_path / "cache"), "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("ANSWERS "))
    answers = json.loads(line.removeprefix("ANSWERS "))
    assert answers["staff"] == ["staff", "staff"]
    assert answers["member"] == ["grant", "grant"]
    assert answers["no_terms"] == ["terms_not_accepted", "terms_not_accepted"]
    assert answers["stranger"] == ["not_a_partner", "not_a_partner"]
    assert answers["anonymous"] == ["not_authenticated", "not_authenticated"]
    starts_at, expires_at, terms_version, partner_name = answers["grant_window"]
    # SQLite's datetimes come back naive; the facts convert them as the ORM does.
    assert starts_at.endswith("+00:00") and expires_at.endswith("+00:00")
    assert (terms_version, partner_name) == ("v1", "Lab")
    assert answers["link"] == ["grant", True, True]
    assert answers["second_link"] == "quota_exhausted"
    checked, broken, events, last = answers["audit"]
    assert (checked, broken, last) == (events, None, ["link.issued"])  # every event sealed, the link's last
    assert answers["revoked"] == ["grant_revoked", "grant_revoked"]
    assert answers["public"] == ["public", "public"]
