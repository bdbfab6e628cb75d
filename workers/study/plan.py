"""A study's settings and the steps they make: for each size of the family, train → evaluate on WikiText-2 →
generate pure and top-k 40 samples → detect each against one shared human reference.

The compute rule: each size trains on tokens_per_parameter × its parameters, at most max_tokens. At 20 tokens
per parameter (Chinchilla's compute-optimal ratio) every mini size reaches the cap of 1,000,000 tokens, about
3.5 passes over Tiny Shakespeare's training part: the largest trains in about ten minutes on two cores and the
whole study in about half an hour, so all sizes see the same data, as GPT-2's sizes all saw WebText.

The sample counts come from a power estimate (workers/statistics.py): 200 test pairs are 400 test texts per
classifier, enough to detect a fall of 7.7 points from 85% accuracy (5.2 from 95%) with 80% power at the 5%
level. Held-out Tiny Shakespeare packs into about 540 human texts of 64 tokens, which caps the three splits
together (280 + 40 + 200 = 520).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from registry.models import ModelSize
from workers.corpora import corpora_dir

TOKENS_PER_PARAMETER = 20.0
MAX_TOKENS = 1_000_000
SAMPLES = {"train": 280, "valid": 40, "test": 200}
MAX_LENGTH = 64
WIKITEXT_TEST = "wikitext-2/test.txt"
WIKITEXT_NAME = "WikiText-2"
INTERVAL_EVERY = 50
# Each size's peak learning rate is lr × REFERENCE_WIDTH / n_embd: wider models take smaller steps (GPT-2's rates
# were tuned per size and fell with it; 1/width is the usual rule). At lr 3e-3: 3e-3 for mini-1m (128 wide; 1e-3
# and 6e-3 both ended higher there in a probe) down to 1.2e-3 for mini-13m (320).
REFERENCE_WIDTH = 128


def default_eval_corpus() -> str:
    """WikiText-2's test split where this machine's corpora folder has it; otherwise no WikiText-2 step."""
    return WIKITEXT_TEST if (corpora_dir() / WIKITEXT_TEST).is_file() else ""


def train_tokens(params: dict, size: ModelSize) -> int:
    return min(math.ceil(params["tokens_per_parameter"] * size.parameter_count), params["max_tokens"])


def train_steps(params: dict, size: ModelSize) -> int:
    return max(1, math.ceil(train_tokens(params, size) / (params["batch_size"] * size.n_ctx)))


def family_sizes(family: str) -> list[ModelSize]:
    return list(ModelSize.objects.filter(family__slug=family).order_by("order", "slug"))


def study_sizes(study) -> list[ModelSize]:
    """The sizes a study was started with (its own list: a size added to the family later is not in it)."""
    by_slug = {size.slug: size for size in ModelSize.objects.filter(slug__in=study.sizes)}
    return [by_slug[slug] for slug in study.sizes if slug in by_slug]


def dataset_name(params: dict, size: ModelSize) -> str:
    return f"{params['name']}-{size.slug}"


def human_name(params: dict) -> str:
    return f"{params['name']}-human"


@dataclass(frozen=True)
class Step:
    key: str
    kind: str
    needs: tuple[str, ...]
    params: Callable[[dict[str, dict]], dict]  # the job's parameters, from the results of the steps it needs


def study_steps(params: dict, corpora: dict, sizes: list[ModelSize]) -> list[Step]:
    """Every step, each after the steps it needs. `corpora` are the study's own copies (runner.py)."""
    steps: list[Step] = []
    if not sizes:
        return steps
    first = sizes[0]
    for size in sizes:
        train = f"train:{size.slug}"
        generate = f"generate:{size.slug}"
        steps.append(Step(train, "train", (), lambda done, size=size: _train_params(params, corpora, size)))
        if corpora.get("eval_corpus"):
            steps.append(Step(f"evaluate:{size.slug}", "evaluate", (train,), lambda done, size=size, train=train: {
                "model_size": size.slug, "revision": done[train]["revision"], "corpus": corpora["eval_corpus"],
                "name": WIKITEXT_NAME, "format": "wikitext"}))
        steps.append(Step(generate, "generate_output_dataset", (train,), lambda done, size=size, train=train: {
            "model_size": size.slug, "revision": done[train]["revision"], "name": dataset_name(params, size),
            "samplings": ["pure", "k40"], "splits": params["samples"], "max_length": params["max_length"],
            "seed": params["seed"], "corpus": corpora["corpus"], "reference": size == first,
            **({"reference_name": human_name(params)} if size == first else {})}))
        for sampling, suffix in (("pure", ""), ("k40", "-k40")):
            steps.append(Step(f"baseline:{size.slug}:{sampling}", "detection_baseline",
                              tuple(dict.fromkeys((generate, f"generate:{first.slug}"))),
                              lambda done, size=size, suffix=suffix: {
                                  "dataset": dataset_name(params, size) + suffix, "reference": human_name(params)}))
    return steps


def size_lr(params: dict, size: ModelSize) -> float:
    return params["lr"] * REFERENCE_WIDTH / size.n_embd


def _train_params(params: dict, corpora: dict, size: ModelSize) -> dict:
    steps = train_steps(params, size)
    return {"model_size": size.slug, "corpus": corpora["corpus"], "steps": steps, "batch_size": params["batch_size"],
            "lr": size_lr(params, size), "seed": params["seed"], "eval_interval": min(INTERVAL_EVERY, steps),
            "checkpoint_interval": min(INTERVAL_EVERY, steps)}
