"""The parameters of each kind of job: checked before a job exists, every problem named by its field.

Limits come from the size's hyperparameters (a micro-batch of `batch_size × n_ctx` tokens, samples shorter than
`n_ctx`) and from settings (STAGEGATE_JOB_MAX_*): no parameter can make a worker train for ever, hold a bucket
in memory or fan a job out into millions of tasks. Unknown parameters are refused, never ignored. Corpora
come from the allow-list in workers/corpora.py.
"""

import math

from django.conf import settings
from rest_framework import serializers

from registry.models import DatasetSplit, EvalResult, ModelSize, OutputDataset, Revision
from workers.bridge import TRAINING_PRECISIONS, WEIGHTS
from workers.corpora import DEFAULT_CORPUS, CorpusRefused, corpus_check
from workers.errors import JobParamsInvalid
from workers.evaluation import FORMATS, evaluation_name
from workers.generation import DEFAULT_SHARD_SIZE, DEFAULT_SPLITS, SAMPLINGS, dataset_names, reference_name
from workers.models import Job, Study
from workers.study import plan as study_plan

SEED_MAX = 2**31 - 1
GRAD_ACCUM_MAX = 64
SHARD_SIZE_MAX = 100_000


class _Params(serializers.Serializer):
    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"params": ["A JSON object of parameters."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown parameter."] for name in unknown})
        return super().to_internal_value(data)

    @staticmethod
    def _size(slug: str) -> ModelSize:
        size = ModelSize.objects.filter(slug=slug).first()
        if size is None:
            raise serializers.ValidationError(f"No model size {slug!r}.")
        return size

    @staticmethod
    def _corpus(spec: str) -> str:
        try:
            return corpus_check(spec).spec
        except CorpusRefused as refused:
            raise serializers.ValidationError(str(refused)) from None


def _trained_revision(slug: str, revision: str | None) -> Revision:
    """The named revision of the size, or its newest, with weights; refused, naming the field, otherwise."""
    trained = Revision.objects.filter(model_size__slug=slug, artifacts__filename="model.safetensors").order_by("-number")
    found = trained.filter(revision=revision).first() if revision is not None else trained.first()
    if found is None:
        raise serializers.ValidationError({"revision": [f"{slug} has no trained revision {revision or ''!r}."]})
    return found


def _at_most(value: int, setting: str) -> int:
    limit = getattr(settings, setting)
    if value > limit:
        raise serializers.ValidationError(f"At most {limit:,} ({setting}).")
    return value


class TrainParams(_Params):
    model_size = serializers.SlugField()
    corpus = serializers.CharField(default=DEFAULT_CORPUS, max_length=1000)
    steps = serializers.IntegerField(min_value=1, default=300)
    batch_size = serializers.IntegerField(min_value=1, default=16)
    lr = serializers.FloatField(default=1e-3)
    grad_accum = serializers.IntegerField(min_value=1, max_value=GRAD_ACCUM_MAX, default=1)
    eval_interval = serializers.IntegerField(min_value=1, default=50)
    checkpoint_interval = serializers.IntegerField(min_value=1, default=50)
    seed = serializers.IntegerField(min_value=0, max_value=SEED_MAX, default=1337)
    threads = serializers.IntegerField(min_value=0, default=0, help_text="0: torch's default.")
    device = serializers.ChoiceField(choices=["cpu", "cuda"], default="cpu")
    precision = serializers.ChoiceField(
        choices=list(TRAINING_PRECISIONS), default="auto",
        help_text="auto: exact fp32 on cpu, bf16 autocast on cuda. bf16: mixed precision on cpu too (products in "
                  "bf16; weights, optimiser and softmax in fp32), about 2x faster on CPUs with bf16 units (AMX), "
                  "far slower than fp32 on CPUs without AVX-512 (the worker logs a warning). "
                  "Recorded on the training run as what it computed in.")
    nproc = serializers.IntegerField(
        min_value=1, default=1, help_text="Data-parallel processes on the worker's host (DDP: gloo on CPU, nccl on "
                                          "CUDA); the global batch is batch_size × grad_accum × nproc.")
    nnodes = serializers.IntegerField(
        min_value=1, default=1, help_text="Hosts in one run: this job's worker is node 0 and hands nodes 1… to other "
                                          "training workers; the global batch is batch_size × grad_accum × nproc × "
                                          "nnodes.")
    collective_timeout_s = serializers.IntegerField(
        min_value=10, default=120,
        help_text="How long a process waits for the others (to join, or in a collective) before the job fails: a "
                  "dead rank or host. At most half STAGEGATE_JOB_STALE_AFTER_S, since a waiting node 0 does not "
                  "beat.")

    def validate_nproc(self, nproc: int) -> int:
        return _at_most(nproc, "STAGEGATE_JOB_MAX_NPROC")

    def validate_nnodes(self, nnodes: int) -> int:
        return _at_most(nnodes, "STAGEGATE_JOB_MAX_NNODES")

    def validate_steps(self, steps: int) -> int:
        return _at_most(steps, "STAGEGATE_JOB_MAX_STEPS")

    def validate_batch_size(self, batch_size: int) -> int:
        return _at_most(batch_size, "STAGEGATE_JOB_MAX_BATCH")

    def validate_threads(self, threads: int) -> int:
        return _at_most(threads, "STAGEGATE_JOB_MAX_THREADS")

    def validate_model_size(self, slug: str) -> str:
        self._size(slug)  # a released size may be trained: that makes a new internal revision (registry/revisions.py)
        return slug

    def validate_corpus(self, spec: str) -> str:
        return self._corpus(spec)

    def validate_lr(self, lr: float) -> float:
        if not (0 < lr < 1 and math.isfinite(lr)):
            raise serializers.ValidationError("A learning rate between 0 and 1.")
        return lr

    def validate(self, data: dict) -> dict:
        errors = {}
        for name in ("eval_interval", "checkpoint_interval"):
            if data[name] > data["steps"]:
                errors[name] = [f"At most steps ({data['steps']})."]
        limit = settings.STAGEGATE_JOB_STALE_AFTER_S // 2
        if data["nproc"] * data["nnodes"] > 1 and data["collective_timeout_s"] > limit:
            # A node 0 waiting that long does not beat: it would be taken for dead and its job handed on.
            errors["collective_timeout_s"] = [f"At most {limit} s (half STAGEGATE_JOB_STALE_AFTER_S)."]
        n_ctx = ModelSize.objects.get(slug=data["model_size"]).n_ctx
        if data["batch_size"] * n_ctx > settings.STAGEGATE_JOB_MAX_BATCH_TOKENS:
            errors["batch_size"] = [f"At most {settings.STAGEGATE_JOB_MAX_BATCH_TOKENS // n_ctx} for this size: "
                                    f"a micro-batch of batch_size × n_ctx ({n_ctx}) tokens is capped at "
                                    f"STAGEGATE_JOB_MAX_BATCH_TOKENS ({settings.STAGEGATE_JOB_MAX_BATCH_TOKENS:,})."]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class GenerateParams(_Params):
    model_size = serializers.SlugField()
    revision = serializers.CharField(max_length=40, required=False,
                                     help_text="The revision to sample (default: the newest with weights).")
    name = serializers.SlugField(max_length=80, required=False,
                                 help_text="Base name of the datasets (default: the size's slug, or slug-rN if taken).")
    samplings = serializers.ListField(child=serializers.ChoiceField(choices=list(SAMPLINGS)), min_length=1,
                                      max_length=len(SAMPLINGS), default=list(SAMPLINGS))
    splits = serializers.DictField(child=serializers.IntegerField(min_value=1), default=dict(DEFAULT_SPLITS))
    max_length = serializers.IntegerField(min_value=1, required=False)
    shard_size = serializers.IntegerField(min_value=1, max_value=SHARD_SIZE_MAX, default=DEFAULT_SHARD_SIZE)
    seed = serializers.IntegerField(min_value=0, max_value=SEED_MAX, default=0)
    reference = serializers.BooleanField(default=True)
    reference_name = serializers.SlugField(max_length=100, required=False,
                                           help_text="Name of the human reference dataset (default: name-reference).")
    corpus = serializers.CharField(default=DEFAULT_CORPUS, max_length=1000)
    device = serializers.ChoiceField(
        choices=["cpu", "cuda"], default="cpu",
        help_text="cuda: sampled in bf16 on GPU hosts (the job goes to STAGEGATE_CUDA_QUEUE); recorded on the "
                  "datasets with the precision.")
    weights = serializers.ChoiceField(
        choices=list(WEIGHTS), default="fp32",
        help_text="int8: sampled with the matrices in int8, per-row scales, computed in fp32 (modelcore/quantize.py; "
                  "CPU only); recorded on the datasets.")

    def validate_model_size(self, slug: str) -> str:
        size = self._size(slug)
        if not size.artifacts.filter(filename="model.safetensors").exists():
            raise serializers.ValidationError(f"{slug} has not been trained yet.")
        return slug

    def validate_corpus(self, spec: str) -> str:
        return self._corpus(spec)

    def validate_samplings(self, samplings: list[str]) -> list[str]:
        if len(set(samplings)) != len(samplings):
            raise serializers.ValidationError("Each sampling once.")
        return samplings

    def validate_splits(self, splits: dict) -> dict:
        if set(splits) != set(DatasetSplit.SPLITS):
            raise serializers.ValidationError("Counts for exactly train, valid and test.")
        limit = settings.STAGEGATE_JOB_MAX_SPLIT_SAMPLES
        too_many = sorted(name for name, count in splits.items() if count > limit)
        if too_many:
            raise serializers.ValidationError(f"At most {limit:,} samples per split ({', '.join(too_many)}).")
        return {name: splits[name] for name in DatasetSplit.SPLITS}

    def validate(self, data: dict) -> dict:
        size = ModelSize.objects.get(slug=data["model_size"])
        data.setdefault("max_length", min(128, size.n_ctx - 1))
        errors = {}
        revision = _trained_revision(size.slug, data.get("revision"))
        data["revision"] = revision.revision
        if "name" not in data:
            taken = OutputDataset.objects.filter(name=size.slug).exists()
            data["name"] = f"{size.slug}-r{revision.number}" if taken else size.slug
        if data["max_length"] > size.n_ctx - 1:
            errors["max_length"] = [f"1 to {size.n_ctx - 1} tokens (n_ctx less the start token)."]
        if data["weights"] != "fp32" and data["device"] != "cpu":
            errors["weights"] = [f"{data['weights']} weights sample on CPU only; cuda samples in bf16."]
        shards = sum(math.ceil(count / data["shard_size"]) for count in data["splits"].values())
        shards *= len(data["samplings"])
        if shards > settings.STAGEGATE_JOB_MAX_SHARDS:
            least = math.ceil(sum(data["splits"].values()) * len(data["samplings"]) / settings.STAGEGATE_JOB_MAX_SHARDS)
            errors["shard_size"] = [f"At least {least} here: this job would run {shards:,} shard tasks, more than "
                                    f"STAGEGATE_JOB_MAX_SHARDS ({settings.STAGEGATE_JOB_MAX_SHARDS:,})."]
        names = dataset_names(data["name"], data["samplings"])
        if data["reference"]:
            data.setdefault("reference_name", reference_name(data["name"]))
            names.append(data["reference_name"])
        else:
            data.pop("reference_name", None)
        taken = sorted(OutputDataset.objects.filter(name__in=names).values_list("name", flat=True))
        if taken:
            errors["name"] = [f"Datasets already exist: {', '.join(taken)}; give another name."]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class BaselineParams(_Params):
    dataset = serializers.SlugField()
    reference = serializers.SlugField()

    def validate_dataset(self, name: str) -> str:
        dataset = OutputDataset.objects.filter(name=name).first()
        if dataset is None or dataset.kind != OutputDataset.Kind.GENERATED:
            raise serializers.ValidationError(f"No generated dataset {name!r}.")
        return name

    def validate_reference(self, name: str) -> str:
        dataset = OutputDataset.objects.filter(name=name).first()
        if dataset is None or dataset.kind != OutputDataset.Kind.REFERENCE:
            raise serializers.ValidationError(f"No reference (human) dataset {name!r}.")
        return name


class EvaluateParams(_Params):
    model_size = serializers.SlugField()
    revision = serializers.CharField(max_length=40, required=False,
                                     help_text="The revision to score (default: the newest with weights).")
    corpus = serializers.CharField(max_length=1000, help_text="The held-out text, from the corpus allow-list.")
    name = serializers.CharField(max_length=100, help_text="The evaluation's name in the registry, e.g. WikiText-2.")
    format = serializers.ChoiceField(choices=list(FORMATS), default="plain",
                                     help_text="wikitext: detokenised first, perplexity per WikiText token.")
    weights = serializers.ChoiceField(
        choices=list(WEIGHTS), default="fp32",
        help_text="int8: the model as weights=int8 generation samples it; recorded as '<name> (int8 weights)'.")

    def validate_model_size(self, slug: str) -> str:
        self._size(slug)
        return slug

    def validate_corpus(self, spec: str) -> str:
        return self._corpus(spec)

    def validate(self, data: dict) -> dict:
        data["revision"] = _trained_revision(data["model_size"], data.get("revision")).revision
        recorded, limit = evaluation_name(data["name"], data["weights"]), EvalResult._meta.get_field("dataset").max_length
        if len(recorded) > limit:
            raise serializers.ValidationError({"name": [
                f"At most {limit} characters as recorded ({recorded!r} has {len(recorded)})."]})
        return data


class StudyParams(_Params):
    """A scaling study's settings (workers/study/plan.py says how each becomes its steps' jobs)."""

    name = serializers.SlugField(max_length=60, help_text="Names the study, its page and its datasets.")
    family = serializers.SlugField(default="mini")
    corpus = serializers.CharField(default=DEFAULT_CORPUS, max_length=1000)
    eval_corpus = serializers.CharField(
        max_length=1000, allow_blank=True, default=study_plan.default_eval_corpus,
        help_text="WikiText-2's test split where the corpora folder has it (any text in WikiText's layout; its "
                  "perplexity is per WikiText token); blank: no such evaluation.")
    tokens_per_parameter = serializers.FloatField(min_value=0.001, max_value=10_000,
                                                  default=study_plan.TOKENS_PER_PARAMETER)
    max_tokens = serializers.IntegerField(min_value=1, default=study_plan.MAX_TOKENS)
    batch_size = serializers.IntegerField(min_value=1, default=16)
    lr = serializers.FloatField(default=3e-3, help_text="Peak learning rate of a size 128 wide; each size's is "
                                                        "lr × 128 / n_embd (workers/study/plan.py).")
    seed = serializers.IntegerField(min_value=0, max_value=SEED_MAX, default=1337)
    samples = serializers.DictField(child=serializers.IntegerField(min_value=1), default=dict(study_plan.SAMPLES))
    max_length = serializers.IntegerField(min_value=1, default=study_plan.MAX_LENGTH)

    def validate_family(self, slug: str) -> str:
        if not ModelSize.objects.filter(family__slug=slug).exists():
            raise serializers.ValidationError(f"No family {slug!r} with sizes.")
        return slug

    def validate_corpus(self, spec: str) -> str:
        return self._corpus(spec)

    def validate_eval_corpus(self, spec: str) -> str:
        return self._corpus(spec) if spec else ""

    def validate_lr(self, lr: float) -> float:
        return TrainParams().validate_lr(lr)

    def validate_samples(self, samples: dict) -> dict:
        return GenerateParams().validate_splits(samples)

    def validate(self, data: dict) -> dict:
        errors = {}
        sizes = study_plan.family_sizes(data["family"])
        study = Study.objects.select_related("job").filter(name=data["name"]).first()
        if data["batch_size"] > settings.STAGEGATE_JOB_MAX_BATCH:
            errors["batch_size"] = [f"At most {settings.STAGEGATE_JOB_MAX_BATCH:,} (STAGEGATE_JOB_MAX_BATCH)."]
        names = [study_plan.human_name(data)]
        for size in sizes:
            name = study_plan.dataset_name(data, size)
            names += [name, name + "-k40"]
            if len(name) > GenerateParams().fields["name"].max_length:
                errors["name"] = [f"Too long for its datasets' names ({name})."]
        taken = sorted(OutputDataset.objects.filter(name__in=names).values_list("name", flat=True))
        if study is None and taken:  # a new study's datasets must be its own (a rerun finds its own there)
            errors["name"] = [f"Datasets already exist: {', '.join(taken)}; give another name."]
        for size in sizes:
            steps = study_plan.train_steps(data, size)
            if steps > settings.STAGEGATE_JOB_MAX_STEPS:
                errors["max_tokens"] = [f"{size.slug} would train {steps:,} steps, above STAGEGATE_JOB_MAX_STEPS."]
            if data["batch_size"] * size.n_ctx > settings.STAGEGATE_JOB_MAX_BATCH_TOKENS:
                errors["batch_size"] = [f"A micro-batch of {size.slug} is capped at STAGEGATE_JOB_MAX_BATCH_TOKENS."]
            if data["max_length"] > size.n_ctx - 1:
                errors["max_length"] = [f"1 to {size.n_ctx - 1} tokens for {size.slug}."]
        if study is not None and study.params != data:
            errors["name"] = [f"Study {study.name!r} exists with other settings: rerun it with its own or give "
                              "another name."]
        elif study is not None and study.job is not None and study.job.status in (Job.Status.QUEUED,
                                                                                  Job.Status.RUNNING):
            errors["name"] = [f"Study {study.name!r} is running already (job {study.job.pk})."]
        if errors:
            raise serializers.ValidationError(errors)
        return data


PARAMS = {Job.Kind.TRAIN: TrainParams, Job.Kind.GENERATE: GenerateParams, Job.Kind.BASELINE: BaselineParams,
          Job.Kind.EVALUATE: EvaluateParams, Job.Kind.STUDY: StudyParams}


def params_validate(kind: str, params: object) -> dict:
    """The normalised parameters of a `kind` job, or JobParamsInvalid naming each problem by its field."""
    if kind not in PARAMS:
        raise JobParamsInvalid(f"kind: one of {', '.join(PARAMS)}.", fields={"kind": [f"One of {', '.join(PARAMS)}."]})
    serializer = PARAMS[kind](data=params)
    if not serializer.is_valid():
        fields = {name: [str(message) for message in messages] if isinstance(messages, list) else [str(messages)]
                  for name, messages in serializer.errors.items()}
        summary = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
        raise JobParamsInvalid(f"The job's parameters are not valid: {summary}", fields=fields)
    return dict(serializer.validated_data)
