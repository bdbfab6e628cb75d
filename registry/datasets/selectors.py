"""Reads of output datasets for the API and pages: related rows, detection by size, a sample of rows. Who may see
which dataset is decided by releases.access.rules.visible_datasets."""

import json
import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Prefetch, QuerySet

from config.errors import DomainError
from registry import storage
from registry.datasets.errors import DatasetNotFound
from registry.models import DatasetSplit, DetectionResult, OutputDataset

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 5
# Enough of a split's head for SAMPLE_ROWS lines of up to 1,024 tokens each.
SAMPLE_BYTES = 64 * 1024
SAMPLE_CACHE_S = 24 * 60 * 60


def datasets_for_display(datasets: QuerySet[OutputDataset]) -> QuerySet[OutputDataset]:
    """`datasets` with their size, splits and detection results fetched up front, by name."""
    return (
        datasets.select_related("model_size__family", "revision")
        .prefetch_related(
            Prefetch("splits", queryset=DatasetSplit.objects.order_by("split")),
            Prefetch("detection_results", queryset=DetectionResult.objects.select_related("reference")
                     .order_by("-created_at", "-id")),
        )
        .order_by("name")
    )


def dataset_from(datasets: QuerySet[OutputDataset], *, name: str) -> OutputDataset:
    """The dataset called `name` among `datasets` (those the caller may see), or DatasetNotFound."""
    dataset = datasets_for_display(datasets).filter(name=name).first()
    if dataset is None:
        raise DatasetNotFound(f"No dataset {name!r}.")
    return dataset


def latest_detection(dataset: OutputDataset) -> DetectionResult | None:
    results = list(dataset.detection_results.all())  # prefetched, newest first
    return results[0] if results else None


# --------------------------------------------------------------------------- detection by model size
PURE, TOP_K_40 = "pure", "top-k 40"


@dataclass(frozen=True)
class DetectionRow:
    """One model size: baseline accuracy on its pure and top-k 40 samples (None where not measured)."""

    size_label: str
    parameter_count: int
    pure: float | None
    top_k_40: float | None


def sampling_label(sampling: dict) -> str | None:
    """Pure or top-k 40, as GPT-2's baseline table has them; None for other samplings and for samples of
    reduced-precision weights (another model, in effect), which the table leaves out."""
    if not sampling or sampling.get("weights", "fp32") != "fp32":
        return None
    if sampling.get("top_k") == 40:
        return TOP_K_40
    if not sampling.get("top_k") and float(sampling.get("top_p", 1.0)) == 1.0:
        return PURE
    return None


def detection_by_size(datasets) -> list[DetectionRow]:
    """Across generated datasets with a detection result, grouped by size (smallest first)."""
    rows: dict[int, dict] = {}
    for dataset in datasets:
        result, label = latest_detection(dataset), sampling_label(dataset.sampling)
        if dataset.kind != OutputDataset.Kind.GENERATED or result is None or label is None:
            continue
        size = dataset.model_size
        row = rows.setdefault(size.pk, {"size": size, PURE: None, TOP_K_40: None})
        row[label] = result.accuracy
    ordered = sorted(rows.values(), key=lambda r: (r["size"].family.name, r["size"].order, r["size"].slug))
    return [DetectionRow(size_label=str(r["size"]), parameter_count=r["size"].parameter_count, pure=r[PURE],
                         top_k_40=r[TOP_K_40]) for r in ordered]


# GPT-2's published baseline (openai/gpt-2-output-dataset README), shown beside ours for reference.
GPT2_DETECTION = [
    DetectionRow("GPT-2 117M (124M)", 124_439_808, 0.8829, 0.9679),
    DetectionRow("GPT-2 345M (355M)", 354_823_168, 0.8894, 0.9522),
    DetectionRow("GPT-2 762M (774M)", 774_030_080, 0.7716, 0.9443),
    DetectionRow("GPT-2 1542M (1558M)", 1_557_611_200, 0.7431, 0.9269),
]


# --------------------------------------------------------------------------- a sample of rows
def sample_rows(part: DatasetSplit, *, rows: int = SAMPLE_ROWS) -> list[dict] | None:
    """The first rows of a split, read from the head of its object (cached by checksum); None if unreadable."""
    key = f"dataset-sample:{part.sha256}:{rows}"
    try:
        cached = cache.get(key)
    except Exception:  # a cache outage must not take the page down
        cached = None
    if cached is not None:
        return cached
    try:
        head = storage.read_head(part.s3_key, SAMPLE_BYTES)
    except DomainError as error:
        logger.warning("sample of %s unavailable: %s", part.filename, error.message)
        return None
    lines = head.decode("utf-8", errors="replace").split("\n")
    complete = lines if len(head) < SAMPLE_BYTES else lines[:-1]  # the last line may be cut
    sample = []
    for line in complete[:rows]:
        try:
            sample.append(json.loads(line))
        except ValueError:
            break
    try:
        cache.set(key, sample, SAMPLE_CACHE_S)
    except Exception:
        logger.warning("cache unavailable; sample of %s not cached", part.filename)
    return sample
