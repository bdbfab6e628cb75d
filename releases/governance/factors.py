"""The factors OpenAI weighed before each GPT-2 release stage (May 2019 update), and what a request must say."""

from releases.governance.errors import InvalidStageRequest

# key -> the question the assessment answers; order as in the 2019 update.
FACTORS: dict[str, str] = {
    "ease_of_generation": "Ease of generating coherent text",
    "role_of_humans": "Role of humans in the generation process",
    "replication": "Likelihood and timing of replication by others",
    "misuse_evidence": "Evidence of use in the wild and expert inferences about unobserved misuse",
    "proofs_of_concept": "Proofs of concept (such as a review generator)",
    "beneficial_demand": "Demand for beneficial uses",
    "stakeholder_input": "Input from stakeholders and experts",
}

# A rationale is the record future reviewers read; a word or two is not one.
RATIONALE_MIN_CHARS = 40
RATIONALE_MIN_WORDS = 6
ASSESSMENT_MAX_CHARS = 5000


def rationale_validate(rationale: str) -> str:
    text = (rationale or "").strip()
    if len(text) < RATIONALE_MIN_CHARS or len(text.split()) < RATIONALE_MIN_WORDS:
        raise InvalidStageRequest(
            "The rationale must explain the decision.",
            fields={"rationale": [f"At least {RATIONALE_MIN_CHARS} characters and {RATIONALE_MIN_WORDS} words."]},
        )
    return text


def factors_validate(factors: dict, *, all_required: bool) -> dict[str, str]:
    """Return the assessments keyed by factor, stripped; unknown factors and blank answers are errors."""
    if not isinstance(factors, dict):
        raise InvalidStageRequest("Factors must be an object of factor -> assessment.",
                                  fields={"factors": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for key, assessment in factors.items():
        if key not in FACTORS:
            errors[key] = [f"Unknown factor; known factors: {', '.join(FACTORS)}."]
        elif not isinstance(assessment, str) or not assessment.strip():
            errors[key] = ["The assessment must be non-empty text."]
        elif len(assessment) > ASSESSMENT_MAX_CHARS:
            errors[key] = [f"At most {ASSESSMENT_MAX_CHARS} characters."]
        else:
            cleaned[key] = assessment.strip()
    if all_required:
        for key in FACTORS:
            if key not in factors:
                errors[key] = ["This factor must be assessed before a release."]
    if errors:
        raise InvalidStageRequest("Some release factors are missing or invalid.", fields={"factors": errors})
    return {key: cleaned[key] for key in FACTORS if key in cleaned}
