"""GPT-2's 2019 staged release as applied stage changes, for `manage.py seed_gpt2`.

Dates and reasons from OpenAI's February, May, August and November 2019 posts (see
/work/shared/facts/gpt2-release.md). Recorded as history: no approvals here, marked historical.
"""

from datetime import UTC, datetime

from registry.models import ModelSize
from releases.governance import stage_changes
from releases.stage_names import Stage

SOURCE = "seed_gpt2: OpenAI's 2019 GPT-2 staged release"

_RESEARCH_PARTNERS = (
    "Cornell University (human susceptibility to synthetic text), the Middlebury Institute's CTEC "
    "(extremist misuse), the University of Oregon (bias probes) and the University of Texas at Austin "
    "(detectability after fine-tuning)"
)

# (slug, from, to, applied_at (UTC), internal rationale, public rationale)
GPT2_STAGE_HISTORY = [
    ("gpt2-124m", Stage.INTERNAL, Stage.PUBLIC, datetime(2019, 2, 14, tzinfo=UTC),
     "Staged release begins: only the smallest model is released, with the sampling code, while the "
     "larger models are held back because of concerns about malicious applications such as generating "
     "deceptive or abusive text at scale. A public review of the strategy is promised at six months.",
     "Released as the first stage of a staged release; larger models are held back while their misuse "
     "potential is studied."),
    ("gpt2-355m", Stage.INTERNAL, Stage.PUBLIC, datetime(2019, 5, 3, tzinfo=UTC),
     "Three months after the first stage: weighing ease of generating coherent text, the role of humans "
     "in generation, likelihood and timing of replication, evidence of use in the wild, proofs of concept, "
     "demand for beneficial uses and stakeholder input, the medium model is released to everyone.",
     "Released three months after 124M, after weighing the release factors published in the May 2019 update."),
    ("gpt2-774m", Stage.INTERNAL, Stage.PARTNERS, datetime(2019, 5, 3, tzinfo=UTC),
     "Shared with partners in the AI and security communities under a non-commercial legal agreement, "
     "so they can study misuse, bias and detection before any wider release.",
     "Shared with research partners under a non-commercial legal agreement."),
    ("gpt2-774m", Stage.PARTNERS, Stage.PUBLIC, datetime(2019, 8, 20, tzinfo=UTC),
     "Six-month update: no strong evidence of misuse so far; partner research (" + _RESEARCH_PARTNERS + ") "
     "informs the decision; detection research shows larger models are harder to detect but still "
     "detectable. The large model is released to everyone.",
     "Released in the six-month update after partner research and no strong evidence of misuse."),
    ("gpt2-1558m", Stage.INTERNAL, Stage.PARTNERS, datetime(2019, 8, 20, tzinfo=UTC),
     "Shared with research partners (" + _RESEARCH_PARTNERS + ") under a non-commercial legal agreement "
     "while its release is weighed.",
     "Shared with research partners under a non-commercial legal agreement."),
    ("gpt2-1558m", Stage.PARTNERS, Stage.PUBLIC, datetime(2019, 11, 5, tzinfo=UTC),
     "Final stage: no strong evidence of misuse of the smaller models; detection baselines reach about "
     "95% on 1.5B outputs; humans find the outputs convincing. The full model is released with code and "
     "weights to aid detection research.",
     "Released as the final stage, with detection research and the output dataset."),
]


def gpt2_history_record() -> int:
    """Record each historical change once; returns how many were newly recorded (0 on a re-run)."""
    recorded = 0
    for slug, from_stage, to_stage, applied_at, rationale, public_rationale in GPT2_STAGE_HISTORY:
        size = ModelSize.objects.get(slug=slug)
        change = stage_changes.stage_history_record(
            size=size, from_stage=from_stage, to_stage=to_stage, applied_at=applied_at, rationale=rationale,
            public_rationale=public_rationale, source=SOURCE,
        )
        recorded += change is not None
    return recorded
