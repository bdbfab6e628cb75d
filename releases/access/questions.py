"""Access questions: what policy staff ask everyone who requests a size (free text, one of several choices, or
a box to tick), and the checking of the answers a request brings. The answers are copied onto the request with
each question's wording, so the record says what was asked even after a question is edited or retired.
"""

from collections.abc import Mapping

from django.db import transaction
from django.db.models import Q

from registry.models import ModelSize
from releases.access.errors import InvalidPartnerAction
from releases.access.models import AccessQuestion
from releases.audit.chain import audit_record
from releases.roles import GRANT_ACCESS, require

Kind = AccessQuestion.Kind
MAX_ANSWER_CHARS = 4000
QUESTION_FIELDS = ("family_id", "model_size_id", "kind", "prompt", "choices", "required", "position", "active")


class AnswersInvalid(InvalidPartnerAction):
    code = "answers_invalid"


def questions_for(size: ModelSize) -> list[AccessQuestion]:
    """The active questions asked of a request for `size`: its family's, then its own."""
    asked = AccessQuestion.objects.filter(Q(family_id=size.family_id) | Q(model_size=size), active=True)
    return sorted(asked, key=lambda q: (q.model_size_id is not None, q.position, q.pk))


def _answer(question: AccessQuestion, raw) -> str | bool | None:
    """The answer as recorded, None when not given; raises ValueError with what is wrong."""
    if question.kind == Kind.AGREE:
        agreed = raw is True or (isinstance(raw, str) and raw.strip().lower() in ("on", "true", "yes", "1"))
        if not agreed:
            raise ValueError("Tick the box to agree; a request cannot be sent without it.")
        return True
    if raw is None:
        text = ""
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise ValueError("Answer with text.")
    if not text:
        if question.required:
            raise ValueError("This question needs an answer.")
        return None
    if "\x00" in text:
        raise ValueError("Null characters are not allowed.")
    if len(text) > MAX_ANSWER_CHARS:
        raise ValueError(f"At most {MAX_ANSWER_CHARS:,} characters.")
    if question.kind == Kind.CHOICE and text not in question.choices:
        raise ValueError(f"Choose one of: {', '.join(question.choices)}.")
    return text


def answers_checked(size: ModelSize, answers: Mapping) -> list[dict]:
    """The request's answers to `size`'s questions, checked, as the record keeps them. `answers` maps question
    ids (numbers or their text) to answers; answers to questions not asked are refused, not dropped."""
    if not isinstance(answers, Mapping):
        raise AnswersInvalid("Answers are an object of question id → answer.", fields={"answers": ["Not an object."]})
    given = {str(key): value for key, value in answers.items()}
    questions = questions_for(size)
    errors: dict[str, list[str]] = {}
    recorded: list[dict] = []
    for question in questions:
        try:
            answer = _answer(question, given.pop(str(question.pk), None))
        except ValueError as problem:
            errors[str(question.pk)] = [str(problem)]
            continue
        recorded.append({"question_id": question.pk, "kind": question.kind, "prompt": question.prompt,
                         "answer": answer})
    for unknown in sorted(given):
        errors[unknown] = [f"{size.slug} asks no question {unknown}."]
    if errors:
        first = next(iter(errors.values()))[0]
        raise AnswersInvalid(f"The answers to the access questions need attention: {first}",
                             fields={f"answers.{key}": value for key, value in errors.items()})
    return recorded


# --------------------------------------------------------------------------- staff edit them (admin)
def question_checked(question: AccessQuestion) -> None:
    """Refuse a question partners could not answer; tidy its wording and options in place."""
    if (question.family_id is None) == (question.model_size_id is None):
        raise InvalidPartnerAction("Ask a question of a family or of one size, not both or neither.",
                                   fields={"family": ["One of family or size."]})
    question.prompt = (question.prompt or "").strip()
    if not question.prompt:
        raise InvalidPartnerAction("A question needs its wording.", fields={"prompt": ["Required."]})
    question.choices = [str(choice).strip() for choice in question.choices or [] if str(choice).strip()]
    if question.kind == Kind.CHOICE and len(question.choices) < 2:
        raise InvalidPartnerAction("A choice needs at least two options.", fields={"choices": ["Two or more."]})
    if question.kind != Kind.CHOICE:
        question.choices = []
    if question.kind == Kind.AGREE:
        question.required = True


def _snapshot(question: AccessQuestion) -> dict:
    return {name: getattr(question, name) for name in QUESTION_FIELDS}


@transaction.atomic
def question_save(*, question: AccessQuestion, actor, ip: str | None = None) -> AccessQuestion:
    """Create or change a question (`question` holds the new values), audited: what partners must answer
    decides who gets a size as much as a grant does."""
    require(actor, GRANT_ACCESS, to="set access questions")
    question_checked(question)
    if question.pk is None:
        question.save()
        audit_record(actor=actor, action="access_question.created", target=question, after=_snapshot(question),
                     ip=ip)
        return question
    before = _snapshot(AccessQuestion.objects.select_for_update().get(pk=question.pk))
    question.save()
    after = _snapshot(question)
    moved = [name for name in QUESTION_FIELDS if before[name] != after[name]]
    if moved:
        audit_record(actor=actor, action="access_question.changed", target=question, ip=ip,
                     before={name: before[name] for name in moved}, after={name: after[name] for name in moved})
    return question
