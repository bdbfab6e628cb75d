"""The two statistics a detection study needs: a bootstrap interval for an accuracy, and how many test texts
it takes to tell two accuracies apart.

Plain Python on purpose: both are a few lines, and a reader can check them against any textbook.
"""

import math
import random
from statistics import NormalDist

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def bootstrap_interval(outcomes: list[int], *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 outcomes (an accuracy), resampling the test texts.

    Seeded, so the same outcomes always give the same interval: a stored figure can be recomputed exactly.
    """
    if not outcomes:
        raise ValueError("no outcomes to resample")
    n, rng = len(outcomes), random.Random(seed)
    means = sorted(sum(rng.choices(outcomes, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return means[int(math.floor(tail * (resamples - 1)))], means[int(math.ceil((1 - tail) * (resamples - 1)))]


def texts_needed(accuracy_a: float, accuracy_b: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Test texts per classifier for a two-sided test of two accuracies to reach `power` at level `alpha`
    (the normal approximation for two independent proportions)."""
    if accuracy_a == accuracy_b:
        raise ValueError("two different accuracies")
    z_alpha, z_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    mean = (accuracy_a + accuracy_b) / 2
    spread = (z_alpha * math.sqrt(2 * mean * (1 - mean))
              + z_power * math.sqrt(accuracy_a * (1 - accuracy_a) + accuracy_b * (1 - accuracy_b)))
    return math.ceil(spread**2 / (accuracy_a - accuracy_b) ** 2)


def detectable_difference(texts: int, accuracy: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest drop below `accuracy` that `texts` test texts per classifier detect with that power."""
    low, high = 1e-4, accuracy - 1e-4
    for _ in range(60):  # bisection: texts_needed falls as the difference grows
        middle = (low + high) / 2
        if texts_needed(accuracy, accuracy - middle, alpha=alpha, power=power) > texts:
            low = middle
        else:
            high = middle
    return high


def difference_interval(outcomes_a: list[int], outcomes_b: list[int], *, paired: int, level: float = 0.95,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(b) − accuracy(a), for two classifiers tested on the same first
    `paired` texts (the shared human reference, in the same order) and each on its own others (its model's
    samples): the shared texts are resampled together, the others apart. Whether it holds 0 is the test that
    two overlapping intervals are not (they may overlap while the difference is significant)."""
    if paired > min(len(outcomes_a), len(outcomes_b)):
        raise ValueError("more paired outcomes than outcomes")
    rng = random.Random(seed)
    shared_a, own_a = outcomes_a[:paired], outcomes_a[paired:]
    shared_b, own_b = outcomes_b[:paired], outcomes_b[paired:]
    differences = []
    for _ in range(resamples):
        picks = rng.choices(range(paired), k=paired)
        sample_a = sum(shared_a[i] for i in picks) + sum(rng.choices(own_a, k=len(own_a)) if own_a else [])
        sample_b = sum(shared_b[i] for i in picks) + sum(rng.choices(own_b, k=len(own_b)) if own_b else [])
        differences.append(sample_b / len(outcomes_b) - sample_a / len(outcomes_a))
    differences.sort()
    tail = (1 - level) / 2
    return (differences[int(math.floor(tail * (resamples - 1)))],
            differences[int(math.ceil((1 - tail) * (resamples - 1)))])
