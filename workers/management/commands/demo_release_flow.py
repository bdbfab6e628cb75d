"""`manage.py demo_release_flow`: the demo's whole release flow, through the real services and workers.

Trains the two smallest mini sizes on the running Celery workers, makes the smallest public and the
second available to partners (requested by alice; approved by bob, and carol where two are needed), generates pure and
top-k 40 datasets of the smallest with a human reference, runs the detection baseline and publishes
the datasets. Each step is skipped when already done, so running it again is quick.
"""

import time

from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from registry.models import DetectionResult, ModelSize, OutputDataset
from releases.governance import stage_requests
from releases.governance.factors import FACTORS
from releases.stage_names import Stage
from workers import generation, services
from workers.models import Job

# A short schedule per size: minutes on 2 CPU cores. --full trains every mini size properly.
QUICK = {"mini-1m": {"steps": 200, "batch_size": 8}, "mini-3m": {"steps": 60, "batch_size": 8}}
FULL = {slug: {"steps": 2000, "batch_size": 16} for slug in ("mini-1m", "mini-3m", "mini-7m", "mini-13m")}
QUICK_SPLITS = {"train": 150, "valid": 25, "test": 25}
FULL_SPLITS = {"train": 2500, "valid": 250, "test": 250}
TARGET_STAGE = {"mini-1m": Stage.PUBLIC, "mini-3m": Stage.PARTNERS}

ASSESSMENTS = {
    "ease_of_generation": "A tiny model: its text is recognisably imitative and rarely coherent past a line.",
    "role_of_humans": "Any misuse would need a human to select and edit nearly every output.",
    "replication": "Anyone can train a model like this in minutes on a laptop.",
    "misuse_evidence": "No use in the wild; experts see no plausible misuse at this size.",
    "proofs_of_concept": "None; the outputs are too weak to build a convincing proof of concept.",
    "beneficial_demand": "Useful for teaching, detection research and testing release tooling.",
    "stakeholder_input": "Partner organisations were consulted and raised no objection.",
}
assert set(ASSESSMENTS) == set(FACTORS)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--full", action="store_true", help="train all four mini sizes longer, larger datasets")
        parser.add_argument("--timeout", type=int, default=3600, help="seconds to wait for each job")

    def handle(self, *args, full: bool, timeout: int, **options) -> None:
        users = {u.username: u for u in get_user_model().objects.filter(username__in=["alice", "bob", "carol"])}
        if len(users) != 3:
            raise CommandError("run seed_demo_accounts first: alice, bob and carol are needed")
        for slug, schedule in (FULL if full else QUICK).items():
            self._train(slug, schedule, timeout)
        for slug, stage in TARGET_STAGE.items():
            self._move(slug, stage, users)
        if "seed_demo_partners" in get_commands():
            call_command("seed_demo_partners", stdout=self.stdout)
        self._datasets("mini-1m", FULL_SPLITS if full else QUICK_SPLITS, timeout)
        for name in ("mini-1m", "mini-1m-k40"):
            self._baseline(name, "mini-1m-reference", timeout)
        for dataset in OutputDataset.objects.exclude(stage=Stage.PUBLIC).filter(name__startswith="mini-1m"):
            self._release(users, Stage.PUBLIC, dataset=dataset)
            self.stdout.write(f"Published dataset {dataset.name} (released to the public, approved by bob, carol).")

    def _wait(self, job: Job, timeout: int) -> Job:
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            job.refresh_from_db()
            line = f"  job {job.pk} {job.kind}: {job.status} {job.progress_done}/{job.progress_total} {job.progress_unit}"
            if line != last:
                self.stdout.write(line)
                last = line
            if job.status == Job.Status.SUCCEEDED:
                return job
            if job.status in Job.FINISHED:
                raise CommandError(f"job {job.pk} {job.status}: {job.error}")
            time.sleep(3)
        raise CommandError(f"job {job.pk} did not finish in {timeout} s; is the Celery worker running?")

    def _job(self, kind: str, params: dict, timeout: int) -> Job:
        running = Job.objects.filter(kind=kind, status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
                                     params__model_size=params.get("model_size")).first()
        return self._wait(running or services.job_submit(kind=kind, params=params), timeout)

    def _train(self, slug: str, schedule: dict, timeout: int) -> None:
        size = ModelSize.objects.get(slug=slug)
        if size.artifacts.filter(filename="model.safetensors").exists():
            return
        self.stdout.write(f"Training {slug} ({schedule['steps']} steps)…")
        job = self._job(Job.Kind.TRAIN, {"model_size": slug, **schedule}, timeout)
        self.stdout.write(f"Trained {slug}: validation loss {job.result['val_loss']:.3f}, "
                          f"perplexity {job.result['perplexity']:.1f}.")

    def _move(self, slug: str, target: Stage, users: dict) -> None:
        size = ModelSize.objects.get(slug=slug)
        if size.stage == target:
            return
        request = self._release(users, target, size=size)
        size.refresh_from_db()
        self.stdout.write(f"{slug} is now {size.stage} (request #{request.pk}, approved by "
                          f"{', '.join(('bob', 'carol')[: request.approvals_required])}).")

    def _release(self, users: dict, target: Stage, *, size=None, dataset=None):
        """alice requests, bob (and carol where two are needed) approve: the newest revision of `size`, or
        `dataset`."""
        what = dataset.name if dataset is not None else str(size)
        request = stage_requests.stage_request_create(
            size=size, dataset=dataset, requester=users["alice"], to_stage=target, factors=ASSESSMENTS,
            rationale=(f"The demo's {what} comes from a tiny model trained on public-domain plays; it poses no "
                       f"risk that warrants holding it back from {target.label.lower()}."),
            public_rationale=f"{what} is released to {target.label.lower()} after review of the 2019 factors.",
        )
        for approver in ("bob", "carol")[: request.approvals_required]:
            request = stage_requests.stage_request_approve(request=request, approver=users[approver],
                                                           comment="Agreed.")
        return request

    def _datasets(self, slug: str, splits: dict, timeout: int) -> None:
        names = [*generation.dataset_names(slug, ["pure", "k40"]), generation.reference_name(slug)]
        if OutputDataset.objects.filter(name__in=names).count() == len(names):
            return
        self.stdout.write(f"Generating output datasets of {slug}…")
        self._job(Job.Kind.GENERATE, {"model_size": slug, "splits": splits, "max_length": 96}, timeout)

    def _baseline(self, name: str, reference: str, timeout: int) -> None:
        if DetectionResult.objects.filter(dataset__name=name, reference__name=reference).exists():
            return
        job = services.job_submit(kind=Job.Kind.BASELINE, params={"dataset": name, "reference": reference})
        job = self._wait(job, timeout)
        self.stdout.write(f"Detection baseline {name} vs {reference}: test accuracy {job.result['accuracy']:.1%}.")
