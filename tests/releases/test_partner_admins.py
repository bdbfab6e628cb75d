"""Partner organisations serve themselves (issue #20): a partner admin invites people by email, removes members
and revokes their tokens; invitations are single-use secrets bound to an address. Played by the real actors:
pat (partner admin), a plain member, an admin of another organisation, someone with a leaked link."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from releases.access import applications, links, organisation, partners, tokens
from releases.access.errors import AccessDenied
from releases.models import AccessRequest, AuditEvent, OutboxMessage, PartnerInvitation, PartnerMember
from tests.releases.conftest import make_grant, make_partner, move, publish_terms, token_for, upload

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-Passphrase-42"


@pytest.fixture
def lab(alice, pat):
    partner = make_partner(alice, pat)
    partners.partner_member_set_role(member=PartnerMember.objects.get(user=pat), role="admin", actor=alice)
    return partner


@pytest.fixture
def admin_client(pat, lab) -> Client:
    client = Client()
    client.force_login(pat)
    return client


def _invite(client: Client, email: str, role: str = "member") -> str:
    """Invite through the portal; the link from the email the outbox holds."""
    client.post("/portal/organisation/invitations/", {"email": email, "role": role})
    mail = OutboxMessage.objects.filter(event="partner.member_invited", recipients=[email]).latest("id")
    return re.search(r"https?://\S+/portal/invitations/[\w-]+/", mail.body).group(0)


def _path(url: str) -> str:
    return url[url.index("/portal/"):]


def test_a_partner_admin_invites_someone_who_creates_an_account_and_joins(admin_client, lab, pat):
    url = _invite(admin_client, "nina@example.org")
    page = admin_client.get("/portal/organisation/").content.decode()
    assert "nina@example.org" in page and url not in page  # the link goes to the address only
    secret = url.rstrip("/").rsplit("/", 1)[1]
    invitation = PartnerInvitation.objects.get()
    assert secret not in invitation.secret_sha256
    assert not any(secret in json.dumps([e.data, e.after]) for e in AuditEvent.objects.all())

    newcomer = Client()
    form = newcomer.get(_path(url)).content.decode()
    assert "Join Example Security Lab" in form and "nina@example.org" in form
    answer = newcomer.post(_path(url), {"username": "nina", "password": "a-long-Passphrase-42",
                                        "password_again": "a-long-Passphrase-42"})
    assert answer.status_code == 302 and answer["Location"] == "/portal/"
    member = PartnerMember.objects.current().get(user__username="nina")
    assert (member.partner, member.role, member.user.email) == (lab, "member", "nina@example.org")
    assert "Example Security Lab" in newcomer.get("/portal/").content.decode()  # signed in
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-3:] == ["partner.member_invited", "user.created", "partner.member_joined"]
    joined = AuditEvent.objects.get(action="partner.member_joined")
    assert joined.data["invited_by"] == "pat" and joined.data["invitation_id"] == invitation.pk

    again = Client().post(_path(url), {"username": "nina2", "password": "a-long-Passphrase-42",
                                       "password_again": "a-long-Passphrase-42"})
    assert again.status_code == 200 and "accepted" in again.content.decode()  # used once
    assert not PartnerMember.objects.filter(user__username="nina2").exists()


def test_an_invitation_is_for_its_address_only(admin_client, rita, django_user_model):
    url = _invite(admin_client, "someone@example.org")
    leaked = Client()
    leaked.force_login(rita)  # rita@… got hold of the link
    page = leaked.get(_path(url)).content.decode()
    assert "The invitation is for someone@example.org" in page
    leaked.post(_path(url))
    assert not PartnerMember.objects.filter(user=rita).exists()
    owner = django_user_model.objects.create_user("sam", email="Someone@Example.org", password="x")
    invited = Client()
    invited.force_login(owner)
    invited.post(_path(url))
    assert PartnerMember.objects.current().filter(user=owner).exists()


def test_unknown_expired_and_cancelled_invitations_let_nobody_in(admin_client, pat):
    assert Client().get("/portal/invitations/not-a-real-secret/").status_code == 404
    expired_url = _invite(admin_client, "late@example.org")
    PartnerInvitation.objects.filter(email="late@example.org").update(expires_at=timezone.now() - timedelta(seconds=1))
    cancelled_url = _invite(admin_client, "gone@example.org")
    cancelled = PartnerInvitation.objects.get(email="gone@example.org")
    admin_client.post(f"/portal/organisation/invitations/{cancelled.pk}/cancel/")
    for url, state in ((expired_url, "expired"), (cancelled_url, "cancelled")):
        answer = Client().post(_path(url), {"username": f"u-{state}", "password": "a-long-Passphrase-42",
                                            "password_again": "a-long-Passphrase-42"})
        assert f"This invitation is {state}" in answer.content.decode()
    assert PartnerMember.objects.current().count() == 1
    assert AuditEvent.objects.filter(action="partner.invitation_cancelled").count() == 1


def test_a_weak_password_or_a_taken_username_keeps_the_invitation_open(admin_client, rita):
    url = _invite(admin_client, "nina@example.org")
    weak = Client().post(_path(url), {"username": "nina", "password": "123", "password_again": "123"})
    assert "too short" in weak.content.decode()
    taken = Client().post(_path(url), {"username": "rita", "password": "a-long-Passphrase-42",
                                       "password_again": "a-long-Passphrase-42"})
    assert "already exists" in taken.content.decode() or "is taken" in taken.content.decode()
    assert PartnerInvitation.objects.get().state() == "pending"


def test_plain_members_and_outsiders_manage_nothing(lab, alice, rita, django_user_model):
    plain = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=plain, actor=alice)
    for user in (plain, rita):
        client = Client()
        client.force_login(user)
        assert client.get("/portal/organisation/")["Location"] == "/portal/"
        client.post("/portal/organisation/invitations/", {"email": "x@example.org"})
        member = PartnerMember.objects.get(user__username="pat")
        assert client.post(f"/portal/organisation/members/{member.pk}/remove/").status_code in (302, 404)
    assert not PartnerInvitation.objects.exists()
    assert PartnerMember.objects.current().count() == 2
    with pytest.raises(organisation.NotPartnerAdmin):
        organisation.invitation_create(actor=plain, email="y@example.org")


def test_a_partner_admin_removes_a_member_whose_tokens_die_with_the_membership(
        s3, size, admin_client, lab, alice, bob, pat, django_user_model, api, tmp_path):
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    mo = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    publish_terms(alice, "v1", mo)
    make_grant(lab, size, alice)
    _, key = tokens.token_create(user=mo, name="mo laptop", expires_days=7, actor=mo)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/grants/").status_code == 200
    member = PartnerMember.objects.get(user=mo)
    confirm = admin_client.get(f"/portal/organisation/members/{member.pk}/remove/").content.decode()
    assert "Remove mo from Example Security Lab?" in confirm
    assert PartnerMember.objects.current().filter(user=mo).exists()  # asking removes nothing
    admin_client.post(f"/portal/organisation/members/{member.pk}/remove/")
    assert not PartnerMember.objects.current().filter(user=mo).exists()
    assert api.get("/api/v1/grants/").status_code == 401 and not AuthToken.objects.filter(user=mo).exists()
    with pytest.raises(AccessDenied):
        links.link_issue(user=mo, size=size, filename="model.safetensors")
    revoked = AuditEvent.objects.get(action="token.revoked")
    assert revoked.actor_label == "pat" and revoked.data["by_partner_admin"] is True
    assert AuditEvent.objects.filter(action="partner.member_removed", actor_label="pat").count() == 1


def test_a_partner_admin_revokes_one_token_and_not_themself(admin_client, lab, alice, pat, django_user_model):
    mo = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    kept, _ = tokens.token_create(user=mo, name="laptop", expires_days=7, actor=mo)
    lost, _ = tokens.token_create(user=mo, name="stolen", expires_days=7, actor=mo)
    member = PartnerMember.objects.get(user=mo)
    page = admin_client.get("/portal/organisation/").content.decode()
    assert lost.token_key in page and "laptop" in page
    admin_client.post(f"/portal/organisation/members/{member.pk}/tokens/{lost.token_key}/revoke/")
    assert list(AuthToken.objects.filter(user=mo)) == [kept]
    me = PartnerMember.objects.get(user=pat)
    admin_client.post(f"/portal/organisation/members/{me.pk}/remove/")
    assert PartnerMember.objects.current().filter(user=pat).exists()
    with pytest.raises(organisation.InvalidPartnerAction, match="cannot remove yourself"):
        organisation.member_remove(member=me, actor=pat)


def test_an_admin_of_another_organisation_cannot_touch_these_members(lab, alice, django_user_model):
    olga = django_user_model.objects.create_user("olga", email="olga@example.org", password="x")
    other = make_partner(alice, olga, name="Other Lab")
    partners.partner_member_set_role(member=PartnerMember.objects.get(user=olga), role="admin", actor=alice)
    pat_member = PartnerMember.objects.get(user__username="pat")
    token, _ = tokens.token_create(user=pat_member.user, name="pat's", expires_days=7, actor=pat_member.user)
    client = Client()
    client.force_login(olga)
    assert client.post(f"/portal/organisation/members/{pat_member.pk}/remove/").status_code == 404
    assert client.post(f"/portal/organisation/members/{pat_member.pk}/tokens/{token.token_key}/revoke/"
                       ).status_code == 404
    with pytest.raises(organisation.NotPartnerAdmin):
        organisation.member_tokens_revoke(member=pat_member, actor=olga)
    pat_invitation = organisation.invitation_create(actor=pat_member.user, email="x@example.org")
    assert client.post(f"/portal/organisation/invitations/{pat_invitation.pk}/cancel/").status_code == 404
    assert PartnerInvitation.objects.get(pk=pat_invitation.pk).state() == "pending"
    assert AuthToken.objects.filter(pk=token.pk).exists() and other.members.count() == 1


def test_an_inactive_organisations_admin_waits_for_policy_staff(lab, alice, pat):
    partners.partner_set_active(partner=lab, active=False, actor=alice, reason="Audit of their use.")
    with pytest.raises(organisation.NotPartnerAdmin, match="inactive"):
        organisation.invitation_create(actor=pat, email="x@example.org")


def test_staff_make_a_member_partner_admin_in_the_admin_audited(lab, alice, django_user_model):
    mo = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    staff = Client()
    staff.force_login(alice)
    page = staff.get(f"/admin/releases/partnerorganisation/{lab.pk}/change/").content.decode()
    members = list(PartnerMember.objects.current().filter(partner=lab).order_by("user__username"))
    form = {"name": lab.name, "kind": lab.kind, "contact_name": "", "contact_email": lab.contact_email,
            "members-TOTAL_FORMS": str(len(members)), "members-INITIAL_FORMS": str(len(members)),
            "members-MIN_NUM_FORMS": "0", "members-MAX_NUM_FORMS": "1000"}
    assert 'name="members-0-role"' in page
    for index, member in enumerate(members):
        form |= {f"members-{index}-id": str(member.pk), f"members-{index}-partner": str(lab.pk),
                 f"members-{index}-user": str(member.user_id),
                 f"members-{index}-role": "admin" if member.user == mo else member.role}
    assert staff.post(f"/admin/releases/partnerorganisation/{lab.pk}/change/", form).status_code == 302
    assert PartnerMember.objects.get(user=mo).role == "admin"
    changed = AuditEvent.objects.filter(action="partner.member_role_changed").latest("id")
    assert (changed.before, changed.after, changed.actor_label) == ("member", "admin", "alice")


def test_an_accepted_applicant_becomes_the_new_organisations_partner_admin(rita, alice):
    application = applications.partner_application_create(
        user=rita, organisation="Rita's Institute", kind="research", contact_name="Rita", contact_email="r@x.org",
        intended_use="Detection research.", agrees_to_terms=True)
    applications.partner_application_accept(application=application, actor=alice)
    assert PartnerMember.objects.current().get(user=rita).role == "admin"
    assert organisation.is_partner_admin(rita)


def test_the_partner_admin_page_links_to_the_organisations_grants(admin_client, size, lab, alice):
    make_grant(lab, size, alice)
    page = admin_client.get("/portal/organisation/").content.decode()
    assert f'href="/models/{size.slug}/"' in page
    assert 'id="manage-organisation"' in admin_client.get("/portal/").content.decode()


# --------------------------------------------------------------------------- the same through the API and CLI
def test_a_partner_admin_manages_the_organisation_through_the_api(api, lab, alice, pat, rita, django_user_model):
    mo = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    mo_token, _ = tokens.token_create(user=mo, name="mo laptop", expires_days=7, actor=mo)
    _, key = tokens.token_create(user=pat, name="pat's scripts", expires_days=7, actor=pat)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")  # a download token reads
    mine = api.get("/api/v1/organisation/").json()
    assert mine["partner"] == "Example Security Lab"
    rows = {m["username"]: m for m in mine["members"]}
    assert rows["pat"]["role"] == "admin" and [t["name"] for t in rows["mo"]["tokens"]] == ["mo laptop"]
    assert api.get("/api/v1/organisation/usage/").json() == []
    # ...and changes nobody: a leaked download token must not let anyone in or lock members out.
    for path in ("/api/v1/organisation/invitations/", f"/api/v1/organisation/members/{rows['mo']['id']}/remove/"):
        refused = api.post(path, {"email": "nina@example.org"}, format="json")
        assert (refused.status_code, refused.json()["error"]) == (403, "token_scope")
    assert not PartnerInvitation.objects.exists() and PartnerMember.objects.current().filter(user=mo).exists()

    api.credentials()
    api.force_login(pat)  # the portal's session
    made = api.post("/api/v1/organisation/invitations/", {"email": "nina@example.org"}, format="json")
    assert made.status_code == 201 and "url" not in made.json() and made.json()["state"] == "pending"
    for email in ("not an address", "x" * 250 + "@example.org", "a\x00b@example.org"):
        bad = api.post("/api/v1/organisation/invitations/", {"email": email}, format="json")
        assert bad.status_code == 400, email
    again = api.post("/api/v1/organisation/invitations/", {"email": "nina@example.org"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "invitation_not_pending"
    cancelled = api.post(f"/api/v1/organisation/invitations/{made.json()['id']}/cancel/")
    assert cancelled.json()["state"] == "cancelled"
    revoked = api.post(f"/api/v1/organisation/members/{rows['mo']['id']}/tokens/revoke/",
                       {"token_key": mo_token.token_key}, format="json")
    assert revoked.json() == {"revoked_tokens": [mo_token.token_key]}
    assert api.post(f"/api/v1/organisation/members/{rows['mo']['id']}/remove/").status_code == 200
    assert api.post(f"/api/v1/organisation/members/{rows['pat']['id']}/remove/").json()["error"] == \
        "cannot_remove_self"


def test_the_organisation_api_refuses_members_outsiders_and_narrow_tokens(api, size, lab, alice, pat, rita,
                                                                            django_user_model):
    mo = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    olga = django_user_model.objects.create_user("olga", email="olga@example.org", password="x")
    make_partner(alice, olga, name="Other Lab")
    PartnerMember.objects.filter(user=olga).update(role="admin")
    pat_id = PartnerMember.objects.get(user=pat).pk
    for user in (mo, rita):
        api.force_login(user)
        refused = api.get("/api/v1/organisation/")
        assert (refused.status_code, refused.json()["error"]) == (403, "not_partner_admin")
        assert api.post(f"/api/v1/organisation/members/{pat_id}/remove/").status_code == 403
    api.force_login(olga)
    assert api.post(f"/api/v1/organisation/members/{pat_id}/remove/").json()["error"] == "member_not_found"
    api.logout()
    _, narrow = tokens.token_create(user=pat, name="only mini-1m", expires_days=7, actor=pat, sizes=[size.slug])
    api.credentials(HTTP_AUTHORIZATION=f"Token {narrow}")
    assert api.get("/api/v1/organisation/").json()["error"] == "token_scope"
    api.credentials()
    assert api.get("/api/v1/organisation/").status_code == 401
    assert PartnerMember.objects.current().filter(user=pat).exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_stagegate_members_and_usage(live_server, lab, alice, pat, django_user_model, capsys):
    from stagegate_client import cli

    mo = django_user_model.objects.create_user("mo", email="mo@example.org", password="x")
    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    account = ["--server", live_server.url, "--token", token_for(pat)]
    assert cli.main(["members", *account]) == 0
    out = capsys.readouterr().out
    assert "Example Security Lab (security)" in out and "mo " in out and "admin" in out
    assert cli.main(["usage", *account]) == 0
    assert "bytes" in capsys.readouterr().out
    assert cli.main(["members", "--server", live_server.url, "--token", token_for(mo)]) == 2
    assert "not_partner_admin" in capsys.readouterr().err


# --------------------------------------------------------------------------- what a review found
def test_a_link_cannot_make_a_second_account_for_an_address_that_has_one(admin_client, rita, django_user_model):
    """The inviter could otherwise follow their own link and create an account in anyone's name."""
    django_user_model.objects.filter(pk=rita.pk).update(email="rita@example.org")
    url = _invite(admin_client, "RITA@example.org")
    answer = Client().post(_path(url), {"username": "rita2", "password": PASSWORD, "password_again": PASSWORD})
    assert "exists already: sign in with it" in answer.content.decode()
    assert not django_user_model.objects.filter(username="rita2").exists()


def test_links_sent_by_a_partner_admin_die_when_they_stop_being_one(admin_client, lab, alice, pat,
                                                                    django_user_model):
    url = _invite(admin_client, "nina@example.org")
    partners.partner_member_set_role(member=PartnerMember.objects.get(user=pat), role="member", actor=alice)
    answer = Client().post(_path(url), {"username": "nina", "password": PASSWORD, "password_again": PASSWORD})
    assert "no longer is one" in answer.content.decode()
    assert not django_user_model.objects.filter(username="nina").exists()


def test_look_alike_usernames_are_refused(admin_client, alice, django_user_model):
    url = _invite(admin_client, "nina@example.org")
    for name in ("ALICE", "\u0430lice", "ni na"):
        answer = Client().post(_path(url), {"username": name, "password": PASSWORD, "password_again": PASSWORD})
        assert answer.status_code == 200, name
    assert django_user_model.objects.filter(email="nina@example.org").count() == 0


def test_the_invitation_secret_leaves_no_copy_behind(admin_client, pat, alice, settings):
    from releases.outbox.delivery import dispatch_due

    url = _invite(admin_client, "nina@example.org")
    secret = url.rstrip("/").rsplit("/", 1)[1]
    mail = OutboxMessage.objects.get(event="partner.member_invited")
    staff = Client()
    staff.force_login(alice)
    assert secret not in staff.get(f"/admin/releases/outboxmessage/{mail.pk}/change/").content.decode()
    visitor = Client()
    page = visitor.get(_path(url)).content.decode()
    assert secret not in page.split("<form", 1)[-1] and 'href="/portal/login/?next=/portal/invitation/"' in page
    assert "Join Example Security Lab" in visitor.get("/portal/invitation/").content.decode()  # back from sign-in
    dispatch_due()
    assert secret not in OutboxMessage.objects.get(pk=mail.pk).body
    staff.post("/admin/releases/outboxmessage/", {"action": "send_again", "_selected_action": [mail.pk]})
    assert OutboxMessage.objects.get(pk=mail.pk).sent_at is not None  # never sent again, erased


def test_a_partner_admin_neither_sees_nor_revokes_a_members_governance_token(admin_client, lab, alice, bob):
    partners.partner_member_add(partner=lab, user=bob, actor=alice)  # policy staff who also belongs to the lab
    governing, _ = tokens.token_create(user=bob, name="bob's governance", expires_days=7, actor=bob,
                                       scope="governance")
    member = PartnerMember.objects.get(user=bob)
    assert governing.token_key not in admin_client.get("/portal/organisation/").content.decode()
    admin_client.post(f"/portal/organisation/members/{member.pk}/remove/")
    assert AuthToken.objects.filter(pk=governing.pk).exists()


def test_invitations_are_limited_per_day(lab, pat, monkeypatch):
    monkeypatch.setattr(organisation, "INVITATIONS_PER_DAY", 2)
    organisation.invitation_create(actor=pat, email="a@example.org")
    organisation.invitation_create(actor=pat, email="b@example.org")
    with pytest.raises(organisation.InvitationNotPending, match="the most it may"):
        organisation.invitation_create(actor=pat, email="c@example.org")


def test_hostile_answers_and_slugs_are_refused_not_server_errors(api, size, lab, alice, bob, pat,
                                                                 django_user_model):
    from releases.access import questions
    from releases.models import AccessQuestion

    move(size, "partners", requester=alice, approvers=[bob])
    asked = questions.question_save(question=AccessQuestion(family=size.family, prompt="Who?"), actor=alice)
    member = Client()
    member.force_login(pat)
    assert member.get("/portal/access-requests/?size=mini\x001m").status_code == 302
    posted = member.post("/portal/access-requests/", {"model_size": size.pk, "purpose": "a\x00b",
                                                      f"answer-{asked.pk}": "x", "answer-purpose": "sneaky"})
    assert posted.status_code == 200 and "null characters" in posted.content.decode()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert api.get("/api/v1/access-questions/", {"model_size": "mini\x001m"}).status_code == 400
    answer = api.post("/api/v1/access-requests/", {"model_size": size.slug, "purpose": "Eval.",
                                                  "answers": {str(asked.pk): "a\x00b"}}, format="json")
    assert answer.status_code == 400 and answer.json()["error"] == "answers_invalid"
    applied = Client()
    applied.force_login(django_user_model.objects.create_user("zed", password="x"))
    long = applied.post("/portal/applications/", {"organisation": "x" * 300, "kind": "research",
                                                  "contact_name": "Z", "contact_email": "z@example.org",
                                                  "intended_use": "Study."})
    assert long.status_code == 302
    assert not AccessRequest.objects.exists()
