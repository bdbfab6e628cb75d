"""Record the GPT-2 family (with its 2019 stage history) and the bundled mini family; running it again
changes nothing."""

from django.core.management.base import BaseCommand
from django.db import transaction

from registry.seed_data import gpt2_family_seed, mini_family_seed
from releases.governance.seed_history import gpt2_history_record


class Command(BaseCommand):
    help = "Seed the GPT-2 family (real hparams, model card, paper results) and the bundled mini family."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        gpt2 = gpt2_family_seed()
        # GPT-2's 2019 stages as applied changes (audited; recording them again adds nothing).
        history_count = gpt2_history_record()
        mini = mini_family_seed()
        self.stdout.write(self.style.SUCCESS(
            f"Seeded {len(gpt2)} GPT-2 sizes ({history_count} new stage changes from 2019) "
            f"and {len(mini)} mini sizes."
        ))
