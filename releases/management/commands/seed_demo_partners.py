"""Demo partner data: Example Security Lab with pat as its partner admin, terms v1 accepted, an active grant for
mini-3m, and one access question for the mini family.

Idempotent, and it never changes a stage: `make demo` moves mini-3m to `partners` through the governance
services; until then the grant opens nothing (releases/access.py).
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from registry.models import ModelSize
from releases.access import grants, partners, questions
from releases.access import rules as access
from releases.models import AccessGrant, AccessQuestion, PartnerMember, PartnerOrganisation, TermsVersion

PARTNER_NAME = "Example Security Lab"
GRANTED_SIZE = "mini-3m"
DEMO_QUESTION = "Which team will work with the weights, and where will they be stored?"
TERMS_TEXT = """Stagegate partner terms of use, version 1.

1. Use the weights only for the purpose stated in your organisation's grant.
2. Do not redistribute the weights or share download links or API tokens.
3. Report suspected misuse, and findings about the model's risks, to the release team.
4. Delete the weights when the grant ends unless the size has become public."""


class Command(BaseCommand):
    help = f"Create {PARTNER_NAME} (partner admin pat, terms v1 accepted) with an active grant for {GRANTED_SIZE}."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        alice, pat = users.filter(username="alice").first(), users.filter(username="pat").first()
        size = ModelSize.objects.filter(slug=GRANTED_SIZE).first()
        if alice is None or pat is None:
            raise CommandError("Run seed_demo_accounts first: alice and pat are needed.")
        if size is None:
            raise CommandError(f"No size {GRANTED_SIZE}: run seed_gpt2 first.")
        partner = PartnerOrganisation.objects.filter(name=PARTNER_NAME).first() or partners.partner_create(
            name=PARTNER_NAME, kind=PartnerOrganisation.Kind.SECURITY, actor=alice,
            contact_name="Pat Example", contact_email="security-lab@example.org",
        )
        membership = PartnerMember.objects.current().filter(user=pat).first()
        if membership is None:
            partners.partner_member_add(partner=partner, user=pat, role=PartnerMember.Role.ADMIN, actor=alice)
        else:
            partners.partner_member_set_role(member=membership, role=PartnerMember.Role.ADMIN, actor=alice)
        if not AccessQuestion.objects.filter(family=size.family).exists():
            questions.question_save(question=AccessQuestion(family=size.family, prompt=DEMO_QUESTION), actor=alice)
        terms = TermsVersion.objects.filter(version="v1").first() or partners.terms_publish(
            version="v1", text=TERMS_TEXT, actor=alice)
        partners.terms_accept(user=pat, terms=terms)
        now = timezone.now()
        holds = [g for g in AccessGrant.objects.filter(partner=partner, model_size=size)
                 if access.grant_state(g, now=now) == access.GRANT_ACTIVE]
        if not holds:
            grants.grant_create(
                partner=partner, size=size, actor=alice, expires_at=now + timedelta(days=180),
                purpose="Red-team mini-3m for misuse potential and evaluate detectors of its samples.",
                quota_links=20, quota_period_s=24 * 3600,
            )
        self.stdout.write(self.style.SUCCESS(
            f"{PARTNER_NAME}: partner admin pat, terms {terms.version} accepted, active grant for {GRANTED_SIZE} "
            f"(size is {size.stage}; the grant opens it only at the partners stage)."
        ))
