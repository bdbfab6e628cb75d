"""Datasets registered through the workers' real service (files in SeaweedFS) and published through releases."""


import pytest

from registry.models import DetectionResult, OutputDataset
from tests.releases.conftest import eager_celery, make_size, move, move_dataset, upload  # noqa: F401
from workers.generation import dataset_register

SPLIT_LINES = {"train": 40, "valid": 6, "test": 6}
PURE = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
K40 = {"temperature": 1.0, "top_k": 40, "top_p": 1.0}


def records(name: str, split: str, lines: int) -> list[dict]:
    return [{"id": i, "ended": i % 3 != 0, "length": 4 + (i * 7) % 28,
             "text": f"{name} {split} line {i}: " + "the quick brown fox " * (1 + i % 5)} for i in range(lines)]


def register(name: str, *, size=None, sampling: dict | None = None) -> OutputDataset:
    return dataset_register(
        name=name, kind="reference" if size is None else "generated", size=size,
        revision=size.revisions.order_by("-number").first() if size is not None else None,
        sampling=sampling if sampling is not None else ({} if size is None else PURE),
        max_length=32, source="tests" if size is None else "",
        records_by_split={split: records(name, split, n) for split, n in SPLIT_LINES.items()},
        card=f"Test dataset {name}.")


def detect(dataset: OutputDataset, reference: OutputDataset, accuracy: float) -> DetectionResult:
    return DetectionResult.objects.create(dataset=dataset, reference=reference, accuracy=accuracy,
                                          valid_accuracy=accuracy, c=4.0, train_pairs=40, test_pairs=6)


@pytest.fixture
def public_size(db, s3, alice, bob, carol, tmp_path):
    """mini-1m with its weights (stored while internal: a released size's files never change), public."""
    size = make_size("mini-1m")
    upload(size, tmp_path)
    move(size, "public", requester=alice, approvers=[bob, carol])
    return size


@pytest.fixture
def datasets(s3, public_size, alice, bob, carol):
    """mini-1m (pure, published), mini-1m-k40 (published), the reference (published), mini-1m-draft (not)."""
    reference = register("mini-1m-reference")
    pure = register("mini-1m", size=public_size)
    k40 = register("mini-1m-k40", size=public_size, sampling=K40)
    draft = register("mini-1m-draft", size=public_size)
    detect(pure, reference, 0.71)
    detect(k40, reference, 0.93)
    for dataset in (reference, pure, k40):
        move_dataset(dataset, "public", requester=alice, approvers=[bob, carol])
    return {d.name: OutputDataset.objects.get(pk=d.pk) for d in (reference, pure, k40, draft)}
