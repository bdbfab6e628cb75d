"""A job's inputs as content-addressed objects in S3, so that any worker on any host computes on the same bytes.

At submission the corpus a job names is read once (from the allow-list in workers/corpora.py) and stored as a
blob under its sha256 (`blobs/sha256/<hex>`, the store weights use too); the job records the sha256 in
`Job.inputs`, and every worker that runs or resumes it reads those bytes, checked, from S3 or from its own
cache (`STAGEGATE_CACHE_DIR/blobs`, keyed by content and safe to lose). A corpus file that changes or vanishes
on some host after submission changes nothing for the job.

`default` is one object too, `corpora/default.txt`, written once by whichever process first needs it (from its
own default text; If-None-Match keeps it to one) and read by everyone after. The tokenizer a training job trains
is stored the same way, by the first worker, and recorded in `Job.inputs` before any step is taken.
"""

from pathlib import Path

from django.conf import settings

from registry import storage
from workers import corpora
from workers.errors import JobParamsInvalid
from workers.models import Job

DEFAULT_CORPUS_KEY, DEFAULT_NAME_KEY = "corpora/default.txt", "corpora/default.name"
TOKENIZER_FILES = ("vocab.json", "merges.txt")


def _cache() -> Path:
    return Path(settings.STAGEGATE_CACHE_DIR) / "blobs"


def default_corpus() -> tuple[bytes, str]:
    """The platform's default corpus and its name, seeded (name first, then text) by the first to need them."""
    try:
        return storage.read_bytes(DEFAULT_CORPUS_KEY), storage.read_bytes(DEFAULT_NAME_KEY).decode()
    except storage.ObjectMissing:
        pass
    for key, data in ((DEFAULT_NAME_KEY, corpora.corpus_name(corpora.DEFAULT_CORPUS).encode()),
                      (DEFAULT_CORPUS_KEY, corpora.corpus_text(corpora.DEFAULT_CORPUS).encode("utf-8"))):
        try:
            storage.upload_bytes(data, key, content_type="text/plain; charset=utf-8", only_if_absent=True)
        except storage.ObjectExists:
            pass  # another process seeded it first: theirs is the default
    return storage.read_bytes(DEFAULT_CORPUS_KEY), storage.read_bytes(DEFAULT_NAME_KEY).decode()


def corpus_bytes(spec: str) -> tuple[bytes, str]:
    """The bytes of the corpus `spec` names (`default`: the platform's one object) and its short name."""
    if spec == corpora.DEFAULT_CORPUS:
        return default_corpus()
    return corpora.corpus_text(spec).encode("utf-8"), corpora.corpus_name(spec)


def corpus_pin(spec: str) -> tuple[str, str]:
    """Store the corpus `spec` names as a blob; its sha256 and short name."""
    data, name = corpus_bytes(spec)
    return storage.blob_put_bytes(data), name


def pinned_inputs(kind: str, params: dict) -> dict:
    """What a job of `kind` with `params` computes on, pinned by content (recorded on the job at submission),
    with the corpus's short name, which no worker could work out without the corpus file."""
    if kind not in (Job.Kind.TRAIN, Job.Kind.GENERATE, Job.Kind.EVALUATE):
        return {}
    try:
        sha256, name = corpus_pin(params["corpus"])
    except corpora.CorpusRefused as refused:  # gone or grown since the parameters were checked
        raise JobParamsInvalid(f"corpus: {refused}", fields={"corpus": [str(refused)]}) from None
    return {"corpus_sha256": sha256, "corpus_name": name}


def corpus_name(job: Job) -> str:
    return job.inputs.get("corpus_name") or corpora.corpus_name(job.params["corpus"])


def corpus_text(job: Job) -> str:
    """The job's corpus: its pinned bytes; a job submitted before pinning reads its spec as it did then."""
    sha256 = job.inputs.get("corpus_sha256")
    if sha256 is None:
        return corpora.corpus_text(job.params["corpus"])
    return storage.blob_get(sha256, cache_dir=_cache()).decode("utf-8", errors="replace")


def tokenizer_pinned(job: Job, directory: Path) -> bool:
    """Fetch the tokenizer recorded on the job into `directory`; False if none is recorded yet."""
    pinned = job.inputs.get("tokenizer")
    if not pinned:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        (directory / name).write_bytes(storage.blob_get(pinned[name], cache_dir=_cache()))
    return True


def tokenizer_pin(job: Job, directory: Path) -> bool:
    """Store a freshly trained tokenizer's files as blobs and record them on the job; False if another attempt
    recorded one first (job.inputs then holds that one, which this attempt must use, so all encode alike)."""
    pinned = {name: storage.blob_put_bytes((directory / name).read_bytes()) for name in TOKENIZER_FILES}
    inputs = {**job.inputs, "tokenizer": pinned}
    if Job.objects.filter(pk=job.pk, inputs__tokenizer__isnull=True).update(inputs=inputs) != 1:
        job.refresh_from_db(fields=["inputs"])
        return False
    job.inputs = inputs
    return True
