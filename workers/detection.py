"""The GPT-2 output-dataset detection baseline: TF-IDF over 1-2 grams and logistic regression.

As openai/gpt-2-output-dataset `baseline.py`: min_df 5, max_features 2**21, liblinear, C chosen on
valid from 1/64 to 64 (powers of two), accuracy on test, half human and half model text. Each test text's
outcome is stored with the result, and a bootstrap interval over them (workers/statistics.py).
"""

import json

from registry import storage
from registry.changes import record_save
from registry.models import DetectionResult, OutputDataset
from workers.statistics import bootstrap_interval

C_GRID = [2.0**e for e in range(-6, 7)]
METHOD = "tfidf-1-2gram-logreg"


def _texts(dataset: OutputDataset, split: str) -> list[str]:
    part = dataset.splits.get(split=split)
    return [json.loads(line)["text"] for line in storage.read_bytes(part.s3_key).decode().splitlines() if line]


def _balanced(human: list[str], model: list[str]) -> tuple[list[str], list[int]]:
    n = min(len(human), len(model))
    return human[:n] + model[:n], [0] * n + [1] * n


def detection_run(*, dataset: OutputDataset, reference: OutputDataset) -> DetectionResult:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    data = {split: _balanced(_texts(reference, split), _texts(dataset, split)) for split in ("train", "valid", "test")}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=5, max_features=2**21)
    train_x = vectorizer.fit_transform(data["train"][0])
    valid_x, test_x = vectorizer.transform(data["valid"][0]), vectorizer.transform(data["test"][0])
    best_c, best_valid, best_model = None, -1.0, None
    for c in C_GRID:
        model = LogisticRegression(solver="liblinear", C=c).fit(train_x, data["train"][1])
        score = model.score(valid_x, data["valid"][1])
        if score > best_valid:
            best_c, best_valid, best_model = c, score, model
    outcomes = [int(guess == truth) for guess, truth in zip(best_model.predict(test_x), data["test"][1], strict=True)]
    accuracy = sum(outcomes) / len(outcomes)
    result = (DetectionResult.objects.filter(dataset=dataset, reference=reference, method=METHOD).first()
              or DetectionResult(dataset=dataset, reference=reference, method=METHOD))
    result.accuracy, result.valid_accuracy, result.c = accuracy, best_valid, best_c
    result.train_pairs, result.test_pairs = len(data["train"][1]) // 2, len(data["test"][1]) // 2
    result.accuracy_low, result.accuracy_high = bootstrap_interval(outcomes)
    result.test_outcomes = "".join(map(str, outcomes))
    record_save(result, noun="detection_result", actor=None, fields=(
        "dataset", "reference", "method", "accuracy", "valid_accuracy", "c", "train_pairs", "test_pairs",
        "accuracy_low", "accuracy_high"))
    return result
