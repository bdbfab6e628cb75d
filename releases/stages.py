"""The release stages, the transitions between them and the approvals each needs.

Stages belong to revisions of a size's files and to output datasets; a size shows the highest stage any of its
revisions holds. This is the one file with the stage rules: services, admin and API ask it, never repeat it.
"""

from django.conf import settings

from releases.stage_names import Stage

# from-stage -> the stages it may move to. Withdrawn is the kill switch, reachable from anywhere;
# moving back (public -> partners) goes through withdrawn and then a new release, each approved.
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.INTERNAL: frozenset({Stage.PARTNERS, Stage.PUBLIC, Stage.WITHDRAWN}),
    Stage.PARTNERS: frozenset({Stage.PUBLIC, Stage.WITHDRAWN}),
    Stage.PUBLIC: frozenset({Stage.WITHDRAWN}),
    Stage.WITHDRAWN: frozenset({Stage.INTERNAL, Stage.PARTNERS, Stage.PUBLIC}),
}

# Approvals (by policy staff other than the requester) a change to each stage needs, unless the
# STAGEGATE_APPROVALS_REQUIRED setting says otherwise. Withdrawal is an emergency, but still reviewed.
DEFAULT_APPROVALS_REQUIRED: dict[Stage, int] = {
    Stage.INTERNAL: 1,
    Stage.PARTNERS: 1,
    Stage.PUBLIC: 2,
    Stage.WITHDRAWN: 1,
}

# Releases must weigh every 2019 factor (releases/factors.py); a withdrawal may be argued more briefly.
FACTORS_REQUIRED_FOR: frozenset[Stage] = frozenset({Stage.PARTNERS, Stage.PUBLIC})

# Every applied stage is reviewed by this many months later unless the request names a date
# (OpenAI promised a public review six months after the February 2019 release).
DEFAULT_REVIEW_INTERVAL_MONTHS = 6


# How far each stage lets a subject out: a size shows the highest its revisions hold. A withdrawn revision was
# out once and is known to have been; an internal one never was.
RANK: dict[Stage, int] = {Stage.INTERNAL: 0, Stage.WITHDRAWN: 1, Stage.PARTNERS: 2, Stage.PUBLIC: 3}


def highest(held) -> Stage:
    return max((Stage(stage) for stage in held), key=RANK.__getitem__)


def transition_allowed(from_stage: str, to_stage: str) -> bool:
    return Stage(to_stage) in TRANSITIONS[Stage(from_stage)]


def allowed_targets(from_stage: str) -> list[Stage]:
    return [stage for stage in Stage if stage in TRANSITIONS[Stage(from_stage)]]


def approvals_required(to_stage: str) -> int:
    configured = getattr(settings, "STAGEGATE_APPROVALS_REQUIRED", {}) or {}
    stage = Stage(to_stage)
    required = int(configured.get(stage.value, DEFAULT_APPROVALS_REQUIRED[stage]))
    # At least one other person always decides: no stage change is ever self-approved.
    return max(required, 1)


def approvals_required_for_samples(to_stage: str, *, revision_stage: str | None) -> int:
    """Approvals for releasing an output dataset: as for any subject, and never fewer than a public release's
    when the revision it was sampled from is still internal (samples tell much about unreleased weights)."""
    required = approvals_required(to_stage)
    if to_stage in (Stage.PARTNERS, Stage.PUBLIC) and revision_stage == Stage.INTERNAL:
        required = max(required, approvals_required(Stage.PUBLIC))
    return required


def factors_required(to_stage: str) -> bool:
    return Stage(to_stage) in FACTORS_REQUIRED_FOR


def review_interval_months() -> int:
    return int(getattr(settings, "STAGEGATE_REVIEW_INTERVAL_MONTHS", DEFAULT_REVIEW_INTERVAL_MONTHS))
