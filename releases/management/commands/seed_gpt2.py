"""Record the GPT-2 family and the bundled mini family; running it again changes nothing."""

from django.core.management.base import BaseCommand
from django.db import transaction

from registry import seed_data, services
from releases.governance.seed_history import gpt2_history_record


class Command(BaseCommand):
    help = "Seed the GPT-2 family (real hparams, model card, paper results) and the bundled mini family."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        gpt2 = services.family_upsert(**seed_data.GPT2_FAMILY)
        for order, spec in enumerate(seed_data.GPT2_SIZES):
            size = services.model_size_upsert(family=gpt2, order=order, **spec)
            services.model_card_set(size=size, **seed_data.GPT2_CARD)
            if size.slug == "gpt2-1558m":
                for dataset, metric, value in seed_data.GPT2_1558M_EVALS:
                    services.eval_result_record(
                        size=size, dataset=dataset, metric=metric, value=value, source=seed_data.GPT2_PAPER
                    )
        # GPT-2's 2019 stages as applied changes (audited; recording them again adds nothing).
        history_count = gpt2_history_record()
        mini = services.family_upsert(**seed_data.MINI_FAMILY)
        for order, spec in enumerate(seed_data.MINI_SIZES):
            size = services.model_size_upsert(family=mini, order=order, **spec)
            services.model_card_set(size=size, **seed_data.MINI_CARD)
        self.stdout.write(self.style.SUCCESS(
            f"Seeded {len(seed_data.GPT2_SIZES)} GPT-2 sizes ({history_count} new stage changes from 2019) "
            f"and {len(seed_data.MINI_SIZES)} mini sizes."
        ))
