"""Output datasets in the gpt-2-output-dataset format: planned in shards, generated, merged, registered.

Each shard has a fixed id range and seed and is written to its own object, so any number of workers
can share the work, and a shard redone after a crash writes the same samples to the same object:
no sample is lost or duplicated, however often a shard or the whole job runs.
"""

import hashlib
import json
import random
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from django.db import transaction

from registry import storage
from registry.changes import record_announce, record_fields
from registry.models import DatasetSplit, ModelSize, OutputDataset, Revision
from workers import bridge, corpora

SAMPLINGS = {
    "pure": {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "suffix": ""},
    "k40": {"temperature": 1.0, "top_k": 40, "top_p": 1.0, "suffix": "-k40"},
}
DEFAULT_SPLITS = {"train": 250, "valid": 25, "test": 25}  # GPT-2's 250,000 / 5,000 / 5,000, CPU-sized
# A shard costs about 20 ms of bookkeeping (task dispatch, existence check, upload, progress) on top of
# its sampling: at 100 samples that is a few per cent of a CPU worker's time, and a CPU-sized split
# still spreads over several workers.
DEFAULT_SHARD_SIZE = 100
GENERATION_BATCH = 25


@dataclass(frozen=True)
class Shard:
    dataset: str
    sampling: str  # a SAMPLINGS key, or "reference"
    split: str
    index: int
    first_id: int
    count: int
    seed: int


def dataset_names(base: str, samplings: list[str]) -> list[str]:
    """The datasets a job names `base` makes: `base` (pure), `base-k40` (top-k 40)."""
    return [base + SAMPLINGS[name]["suffix"] for name in samplings]


def reference_name(base: str) -> str:
    return f"{base}-reference"


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "big") >> 1


def plan_shards(params: dict) -> list[Shard]:
    shards = []
    for sampling in params["samplings"]:
        name = params["name"] + SAMPLINGS[sampling]["suffix"]
        first_id = 0
        for split in DatasetSplit.SPLITS:
            total = params["splits"][split]
            for index, start in enumerate(range(0, total, params["shard_size"])):
                count = min(params["shard_size"], total - start)
                shards.append(Shard(name, sampling, split, index, first_id + start, count,
                                    _seed(params["seed"], name, split, index)))
            first_id += total
    return shards


def shard_key(prefix: str, shard: Shard) -> str:
    return f"{prefix}shards/{shard.dataset}/{shard.split}-{shard.index:05d}.jsonl"


class NoAccelerator(RuntimeError):
    """A CUDA job's task reached a worker without CUDA (a queue consumed by the wrong host)."""


def _device(params: dict) -> str:
    import torch

    device = params.get("device", "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise NoAccelerator("this job samples on CUDA and this worker has no CUDA device; only workers on GPU "
                            "hosts should consume STAGEGATE_CUDA_QUEUE")
    return device


def shard_run(*, prefix: str, shard: Shard, params: dict) -> bool:
    """Generate one shard unless its object already exists; True if it did the work."""
    key = shard_key(prefix, shard)
    try:
        storage.head(key)
        return False
    except storage.ObjectMissing:
        pass
    from modelcore import kernels
    from modelcore.sample import generate

    model, tokenizer, _config = bridge.load_model(_revision(params))
    setting = SAMPLINGS[shard.sampling]
    lines = []
    samples = generate(
        model, n_samples=shard.count, batch_size=min(GENERATION_BATCH, shard.count),
        max_new_tokens=params["max_length"], temperature=setting["temperature"], top_k=setting["top_k"],
        top_p=setting["top_p"], seed=shard.seed, eot_id=tokenizer.eot_id,
        # A redone shard, maybe on another worker, repeats the same samples: the native step (which sums in
        # one fixed order whatever the threads), else one fixed torch layout, never the layout a worker
        # times as fastest. Workers of one fleet build the native step alike (modelcore/native.py).
        layout=kernels.FIXED_LAYOUT, device=_device(params),
        weights=params.get("weights", "fp32"),
    )
    for offset, sample in enumerate(samples):
        record = {"id": shard.first_id + offset, "ended": sample.ended, "length": sample.length,
                  "text": tokenizer.decode(sample.tokens)}
        lines.append(json.dumps(record, ensure_ascii=False))
    storage.upload_bytes(("\n".join(lines) + "\n").encode(), key, content_type="application/x-ndjson")
    return True


def reference_records(*, params: dict, tokenizer, held_out: str) -> dict[str, list[dict]]:
    """Human text in the same format: held-out corpus paragraphs, packed up to max_length tokens."""
    paragraphs = [p.strip() for p in held_out.split("\n\n") if p.strip()]
    random.Random(params["seed"]).shuffle(paragraphs)
    records, needed = [], sum(params["splits"].values())
    chunk, chunk_tokens = [], 0
    for paragraph in paragraphs:
        tokens = len(tokenizer.encode(paragraph + "\n\n"))
        if chunk and chunk_tokens + tokens > params["max_length"]:
            records.append(_reference_record(chunk, ended=True, tokenizer=tokenizer, cap=params["max_length"]))
            chunk, chunk_tokens = [], 0
        chunk.append(paragraph)
        chunk_tokens += tokens
        if len(records) == needed:
            break
    if chunk and len(records) < needed:
        records.append(_reference_record(chunk, ended=True, tokenizer=tokenizer, cap=params["max_length"]))
    by_split, start = {}, 0
    for split in DatasetSplit.SPLITS:
        share = records[start:start + params["splits"][split]]
        by_split[split] = [{**r, "id": start + i} for i, r in enumerate(share)]
        start += params["splits"][split]
    return by_split


def _reference_record(paragraphs: list[str], *, ended: bool, tokenizer, cap: int) -> dict:
    tokens = tokenizer.encode("\n\n".join(paragraphs))
    if len(tokens) > cap:
        tokens, ended = tokens[:cap], False
    return {"ended": ended, "length": len(tokens), "text": tokenizer.decode(tokens)}


HISTOGRAM_BINS = 16


class _SplitStats:
    """Statistics gathered line by line, so a split of any size is written in constant memory."""

    def __init__(self, max_length: int) -> None:
        self.max_length, self.lines, self.total_length, self.ended = max_length, 0, 0, 0
        self.histogram = [0] * HISTOGRAM_BINS

    def add(self, record: dict) -> None:
        self.lines += 1
        self.total_length += record["length"]
        self.ended += bool(record["ended"])
        self.histogram[min(HISTOGRAM_BINS - 1, record["length"] * HISTOGRAM_BINS // (self.max_length + 1))] += 1


def _summary(parts: list[_SplitStats], max_length: int) -> dict:
    lines = sum(p.lines for p in parts)
    return {
        "lines": lines,
        "mean_length": round(sum(p.total_length for p in parts) / lines, 2) if lines else 0.0,
        "fraction_ended": round(sum(p.ended for p in parts) / lines, 4) if lines else 0.0,
        "length_histogram": [sum(p.histogram[i] for p in parts) for i in range(HISTOGRAM_BINS)],
        "length_histogram_max": max_length,
    }


def _revision(params: dict) -> Revision:
    return Revision.objects.select_related("model_size").get(model_size__slug=params["model_size"],
                                                             revision=params["revision"])


def dataset_register(*, name: str, kind: str, size: ModelSize | None, sampling: dict, max_length: int,
                     source: str, records_by_split: dict[str, Iterable[dict]], card: str,
                     revision: Revision | None = None) -> OutputDataset:
    """Stream each split to `<name>.<split>.jsonl`, upload it (sha256 recorded) and register the dataset."""
    uploaded, stats = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for split, records in records_by_split.items():
            path = Path(tmp) / f"{name}.{split}.jsonl"
            stats[split] = _SplitStats(max_length)
            with open(path, "w", encoding="utf-8") as out:
                for record in records:
                    stats[split].add(record)
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
            key = f"datasets/{name}/{secrets.token_hex(8)}/{path.name}"
            uploaded[split] = storage.upload_file(path, key, content_type="application/x-ndjson")
    summary = _summary(list(stats.values()), max_length)
    summary["splits"] = {split: s.lines for split, s in stats.items()}
    with transaction.atomic():
        dataset = OutputDataset.objects.create(
            name=name, kind=kind, model_size=size, revision=revision, sampling=sampling, max_length=max_length,
            source=source, stats=summary, card=card,
        )
        for split, stored in uploaded.items():
            DatasetSplit.objects.create(dataset=dataset, split=split, lines=stats[split].lines,
                                        s3_key=stored.key, bytes=stored.bytes, sha256=stored.sha256)
        # A new release subject (internal until a request moves it): audited by releases/ with its files.
        record_announce(dataset, "dataset.created", actor=None, before=None, after={
            **record_fields(dataset, ("name", "kind", "model_size", "revision", "sampling", "max_length", "source")),
            "splits": {split: [stats[split].lines, stored.bytes, stored.sha256] for split, stored in uploaded.items()},
        })
    return dataset


def shard_records(prefix: str, shards: list[Shard]) -> Iterator[dict]:
    """The records of the given shards in id order, one shard object in memory at a time."""
    for shard in shards:
        for line in storage.read_bytes(shard_key(prefix, shard)).decode().splitlines():
            if line:
                yield json.loads(line)


def shard_as_dict(shard: Shard) -> dict:
    return asdict(shard)


def _generated_card(revision: Revision, setting: dict, max_length: int) -> str:
    how = "top-k 40 truncation" if setting["top_k"] else "pure sampling (temperature 1, no truncation)"
    weights = setting.get("weights", "fp32")
    with_weights = "" if weights == "fp32" else f" with {weights} weights (per-row scales)"
    return (f"Unconditional samples of {revision.model_size} (revision {revision.revision}), {how}, at most "
            f"{max_length} tokens each, sampled on {setting.get('device', 'cpu')} in "
            f"{setting.get('precision', 'fp32')}{with_weights}, in the gpt-2-output-dataset format.")


def dataset_job_finalize(*, prefix: str, params: dict, corpus_name: str, corpus_text: Callable[[], str]) -> dict:
    """Merge the shards into registered datasets (skipping any already registered) and add the reference."""
    revision = _revision(params)
    size = revision.model_size
    shards = plan_shards(params)
    names = []
    for sampling in params["samplings"]:
        name = params["name"] + SAMPLINGS[sampling]["suffix"]
        names.append(name)
        if OutputDataset.objects.filter(name=name).exists():
            continue  # a finalize retried after registering it
        setting = {k: v for k, v in SAMPLINGS[sampling].items() if k != "suffix"}
        # Recorded with the sampling: samples of one seed differ between devices and precisions.
        device = params.get("device", "cpu")
        setting |= {"device": device, "precision": bridge.precision(device), "weights": params.get("weights", "fp32")}
        dataset_register(
            name=name, kind=OutputDataset.Kind.GENERATED, size=size, revision=revision, sampling=setting,
            max_length=params["max_length"], source="",
            records_by_split={split: shard_records(prefix, [s for s in shards if s.dataset == name and s.split == split])
                              for split in DatasetSplit.SPLITS},
            card=_generated_card(revision, setting, params["max_length"]),
        )
    if params["reference"]:
        name = params.get("reference_name") or reference_name(params["name"])
        names.append(name)
        if not OutputDataset.objects.filter(name=name).exists():
            _model, tokenizer, _config = bridge.load_model(revision)
            _train, held_out = corpora.split_corpus(corpus_text())
            dataset_register(
                name=name, kind=OutputDataset.Kind.REFERENCE, size=None, sampling={},
                max_length=params["max_length"], source=corpus_name,
                records_by_split=reference_records(params=params, tokenizer=tokenizer, held_out=held_out),
                card=(f"Human-written text held out from {size}'s training corpus "
                      f"({corpus_name}), the role WebText plays for GPT-2's samples; "
                      f"lengths in {size}'s tokens."),
            )
    for shard in shards:
        storage.delete(shard_key(prefix, shard))
    return {"datasets": names}
