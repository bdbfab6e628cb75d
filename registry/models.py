"""What exists: model families, their sizes (hparams), revisions of their files, cards, training runs, evals,
output datasets."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from registry.filenames import validate_filename
from registry.hparams import HParams, hparams_validate, parameter_count
from releases.stage_names import Stage


class ModelFamily(models.Model):
    slug = models.SlugField(unique=True, max_length=64)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # Bundled families are trained by this platform's workers (the mini family).
    bundled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "model families"

    def __str__(self) -> str:
        return self.name


class ModelSize(models.Model):
    family = models.ForeignKey(ModelFamily, on_delete=models.PROTECT, related_name="sizes")
    slug = models.SlugField(unique=True, max_length=64)
    display_name = models.CharField(max_length=64, help_text="The current name, e.g. 124M.")
    historical_names = models.JSONField(
        default=list, blank=True, help_text="Earlier names, e.g. 117M and small for GPT-2 124M."
    )
    order = models.PositiveSmallIntegerField(default=0, help_text="Position within the family, smallest first.")
    n_vocab = models.PositiveIntegerField()
    n_ctx = models.PositiveIntegerField()
    n_embd = models.PositiveIntegerField()
    n_head = models.PositiveIntegerField()
    n_layer = models.PositiveIntegerField()
    # The highest stage any of its revisions holds (public, partners, withdrawn, internal, in that order): what
    # lists and pages show. Kept by releases/governance/stage_changes.py, never written here or in a form.
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.INTERNAL, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["family__name", "order", "slug"]

    def __str__(self) -> str:
        return f"{self.family.name} {self.display_name}"

    @property
    def hparams(self) -> HParams:
        return HParams(self.n_vocab, self.n_ctx, self.n_embd, self.n_head, self.n_layer)

    @property
    def parameter_count(self) -> int:
        return parameter_count(self.hparams)

    def clean(self) -> None:
        hparams_validate({name: getattr(self, name) for name in HParams.__dataclass_fields__})
        if not isinstance(self.historical_names, list) or not all(
            isinstance(name, str) for name in self.historical_names
        ):
            raise ValidationError({"historical_names": "Must be a list of names."})


class TrainingRun(models.Model):
    """One training of a size: what it was trained on and with what, and how it went."""

    model_size = models.ForeignKey(ModelSize, on_delete=models.CASCADE, related_name="training_runs")
    corpus = models.CharField(max_length=500, help_text="Local path or S3 prefix of the training text.")
    settings = models.JSONField(default=dict, blank=True)
    steps = models.PositiveIntegerField(default=0)
    final_val_loss = models.FloatField(null=True, blank=True)
    loss_curve = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Training run {self.pk} of {self.model_size.slug}"


class Revision(models.Model):
    """An immutable set of a size's files, named by its content: `revision` is derived from the sorted file list
    (filename, bytes, sha256) and the hyperparameters (registry/revisions.py), so the same bytes always give the
    same id. Training or registering files makes a new revision; none is ever changed. Each revision has its own
    release stage, moved only by releases/ (see releases/stages.py)."""

    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="revisions")
    revision = models.CharField(max_length=40, editable=False, help_text="40 lowercase hex digits.")
    number = models.PositiveIntegerField(editable=False, help_text="1, 2, … within the size, for people.")
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
                               editable=False)
    hparams = models.JSONField(editable=False)
    training_run = models.ForeignKey("TrainingRun", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="revisions", editable=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", editable=False)
    note = models.TextField(blank=True, editable=False)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.INTERNAL, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_size", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model_size", "revision"], name="revision_id_unique_per_size"),
            models.UniqueConstraint(fields=["model_size", "number"], name="revision_number_unique_per_size"),
        ]

    def __str__(self) -> str:
        return f"{self.model_size.slug}@{self.short}"

    @property
    def short(self) -> str:
        return self.revision[:12]


class Artifact(models.Model):
    class Format(models.TextChoices):
        SAFETENSORS = "safetensors", "safetensors"
        JSON = "json", "JSON"
        TEXT = "text", "text"
        PNG = "png", "PNG"
        JSONL = "jsonl", "JSON lines"

    model_size = models.ForeignKey(ModelSize, on_delete=models.PROTECT, related_name="artifacts")
    revision = models.ForeignKey(Revision, on_delete=models.PROTECT, related_name="artifacts")
    training_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="artifacts"
    )
    filename = models.CharField(max_length=255, validators=[validate_filename])
    # Built by the server: `blobs/sha256/<hex>`, shared by every revision holding the same bytes and never
    # overwritten (files stored before revisions keep their earlier keys). Clients never name keys.
    s3_key = models.CharField(max_length=512, editable=False)
    bytes = models.BigIntegerField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    format = models.CharField(max_length=16, choices=Format.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_size", "filename"]
        constraints = [
            models.UniqueConstraint(fields=["revision", "filename"], name="artifact_unique_filename_per_revision")
        ]

    def __str__(self) -> str:
        return f"{self.model_size.slug}/{self.filename}"


class ModelCard(models.Model):
    """Markdown sections modelled on the GPT-2 model card."""

    model_size = models.OneToOneField(ModelSize, on_delete=models.CASCADE, related_name="card")
    details = models.TextField(blank=True)
    intended_uses = models.TextField(blank=True)
    out_of_scope_uses = models.TextField(blank=True)
    limitations_and_biases = models.TextField(blank=True)
    evaluation = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    SECTIONS = ("details", "intended_uses", "out_of_scope_uses", "limitations_and_biases", "evaluation")

    def __str__(self) -> str:
        return f"Card for {self.model_size.slug}"


class EvalResult(models.Model):
    model_size = models.ForeignKey(ModelSize, on_delete=models.CASCADE, related_name="evals")
    # The revision measured, where one was (a training run's evaluation); empty for published figures.
    revision = models.ForeignKey(Revision, on_delete=models.PROTECT, null=True, blank=True, related_name="evals")
    training_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="evals"
    )
    dataset = models.CharField(max_length=100)
    metric = models.CharField(max_length=50)
    value = models.FloatField()
    source = models.CharField(max_length=200, blank=True, help_text="Where a figure not measured here comes from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_size", "dataset", "metric"]

    def __str__(self) -> str:
        return f"{self.model_size.slug} {self.dataset} {self.metric}={self.value:g}"


class OutputDataset(models.Model):
    """Samples of a size (or human reference text) in the gpt-2-output-dataset format, one file per split."""

    class Kind(models.TextChoices):
        GENERATED = "generated", "generated"
        REFERENCE = "reference", "reference"

    name = models.SlugField(max_length=100, unique=True, help_text="e.g. mini-1m, mini-1m-k40, reference")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    model_size = models.ForeignKey(
        ModelSize, on_delete=models.PROTECT, null=True, blank=True, related_name="output_datasets"
    )
    # The revision sampled (generated datasets); empty for reference text.
    revision = models.ForeignKey(Revision, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="output_datasets")
    # {"temperature": 1.0, "top_k": 0, "top_p": 1.0} for generated datasets; {} for reference text.
    sampling = models.JSONField(default=dict, blank=True)
    max_length = models.PositiveIntegerField(help_text="Token cap of each sample (at most n_ctx).")
    source = models.CharField(max_length=500, blank=True, help_text="Corpus of a reference dataset.")
    stats = models.JSONField(default=dict, blank=True)
    card = models.TextField(blank=True)
    # A release subject like a revision: moved only by releases/ through requests and approvals. Public datasets
    # are anyone's; partners datasets are for members of organisations with a grant for the size.
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.INTERNAL, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetSplit(models.Model):
    SPLITS = ("train", "valid", "test")

    dataset = models.ForeignKey(OutputDataset, on_delete=models.CASCADE, related_name="splits")
    split = models.CharField(max_length=8, choices=[(s, s) for s in SPLITS])
    lines = models.PositiveIntegerField()
    s3_key = models.CharField(max_length=512, unique=True, editable=False)
    bytes = models.BigIntegerField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)

    class Meta:
        ordering = ["dataset", "split"]
        constraints = [models.UniqueConstraint(fields=["dataset", "split"], name="dataset_split_unique")]

    def __str__(self) -> str:
        return self.filename

    @property
    def filename(self) -> str:
        return f"{self.dataset.name}.{self.split}.jsonl"


class DetectionResult(models.Model):
    """The GPT-2 output-dataset baseline: TF-IDF + logistic regression telling samples from human text."""

    dataset = models.ForeignKey(OutputDataset, on_delete=models.CASCADE, related_name="detection_results")
    reference = models.ForeignKey(OutputDataset, on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=100, default="tfidf-1-2gram-logreg")
    accuracy = models.FloatField(help_text="Test accuracy, 0–1.")
    valid_accuracy = models.FloatField()
    c = models.FloatField(help_text="Inverse regularisation strength chosen on valid.")
    train_pairs = models.PositiveIntegerField()
    test_pairs = models.PositiveIntegerField()
    # 95% percentile bootstrap over the test texts (workers/statistics.py); empty for results from before.
    accuracy_low = models.FloatField(null=True, blank=True)
    accuracy_high = models.FloatField(null=True, blank=True)
    # Each test text right (1) or wrong (0), human texts first: the interval can be recomputed from it.
    test_outcomes = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.dataset.name} vs {self.reference.name}: {self.accuracy:.1%}"


class DataRemovalRequest(models.Model):
    """Someone asks for text to be removed from a published dataset (GPT-2's dataset offered this by email)."""

    class Status(models.TextChoices):
        OPEN = "open", "open"
        REMOVED = "removed", "removed"
        DECLINED = "declined", "declined"

    name = models.CharField(max_length=200)
    email = models.EmailField()
    dataset = models.ForeignKey(OutputDataset, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="removal_requests")
    text = models.TextField(help_text="The text to remove, or how to find it (split, id, a quote).")
    reason = models.TextField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    staff_notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Removal request #{self.pk} ({self.dataset.name if self.dataset else 'no dataset'})"
