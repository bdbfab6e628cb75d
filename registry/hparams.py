"""GPT-2 hyperparameters: validation and the parameter count they imply (no torch needed)."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError

HPARAM_FIELDS = ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
# Generous ceilings: they catch typos (an extra zero) without ruling out real models.
HPARAM_MAX = {"n_vocab": 1_000_000, "n_ctx": 1_048_576, "n_embd": 65_536, "n_head": 1_024, "n_layer": 1_024}


@dataclass(frozen=True)
class HParams:
    n_vocab: int
    n_ctx: int
    n_embd: int
    n_head: int
    n_layer: int

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in HPARAM_FIELDS}


def hparams_validate(values: dict) -> HParams:
    """Return HParams or raise ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    unknown = sorted(set(values) - set(HPARAM_FIELDS))
    for name in unknown:
        errors[name] = f"Unknown hyperparameter; expected only {', '.join(HPARAM_FIELDS)}."
    for name in HPARAM_FIELDS:
        value = values.get(name)
        if value is None:
            errors[name] = "This hyperparameter is required."
        elif isinstance(value, bool) or not isinstance(value, int):
            errors[name] = f"Must be a whole number, not {value!r}."
        elif not 1 <= value <= HPARAM_MAX[name]:
            errors[name] = f"Must be between 1 and {HPARAM_MAX[name]:,}; got {value:,}."
    if not errors and values["n_embd"] % values["n_head"] != 0:
        errors["n_head"] = f"n_embd ({values['n_embd']}) must be divisible by n_head ({values['n_head']})."
    if errors:
        raise ValidationError(errors)
    return HParams(**{name: values[name] for name in HPARAM_FIELDS})


def parameter_count(hp: HParams) -> int:
    """Trainable parameters of the GPT-2 architecture with tied input/output embeddings."""
    e = hp.n_embd
    embeddings = hp.n_vocab * e + hp.n_ctx * e
    per_block = (
        2 * e  # ln_1
        + e * 3 * e + 3 * e  # attention qkv
        + e * e + e  # attention projection
        + 2 * e  # ln_2
        + e * 4 * e + 4 * e  # MLP up
        + 4 * e * e + e  # MLP down
    )
    final_norm = 2 * e
    return embeddings + hp.n_layer * per_block + final_norm
