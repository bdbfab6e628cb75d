"""`manage.py job start KIND key=value …`, `job show ID`, `job cancel ID`, `job wait ID`."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from workers import services
from workers.models import Job


def _value(raw: str):
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # plain strings need no quotes: model_size=mini-1m


class Command(BaseCommand):
    help = "Start, show, wait for or cancel worker jobs (train, generate_output_dataset, detection_baseline)."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="submit a job, e.g. job start train model_size=mini-1m steps=300")
        start.add_argument("kind", choices=[k.value for k in Job.Kind])
        start.add_argument("params", nargs="*", help="key=value; values are JSON where they parse as JSON")
        start.add_argument("--wait", action="store_true", help="wait until the job finishes")
        for name in ("show", "cancel", "wait"):
            sub.add_parser(name).add_argument("job_id", type=int)

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "start":
                params = {}
                for item in options["params"]:
                    key, sep, raw = item.partition("=")
                    if not sep:
                        raise CommandError(f"{item!r}: parameters are key=value")
                    params[key] = _value(raw)
                job = services.job_submit(kind=options["kind"], params=params)
                self.stdout.write(f"Started job {job.pk} ({job.kind}).")
                if options["wait"]:
                    self._wait(job.pk)
            else:
                job = Job.objects.filter(pk=options["job_id"]).first()
                if job is None:
                    raise CommandError(f"no job {options['job_id']}")
                if action == "cancel":
                    services.job_cancel(job=job)
                    self.stdout.write(f"Cancelled job {job.pk}.")
                elif action == "wait":
                    self._wait(job.pk)
                else:
                    self._show(job)
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _show(self, job: Job) -> None:
        self.stdout.write(json.dumps({
            "id": job.pk, "kind": job.kind, "status": job.status, "params": job.params,
            "progress": [job.progress_done, job.progress_total, job.progress_unit], "result": job.result,
            "error": job.error,
        }, indent=2, default=str))

    def _wait(self, job_id: int) -> None:
        last = None
        while True:
            job = Job.objects.get(pk=job_id)
            line = f"job {job.pk}: {job.status} {job.progress_done}/{job.progress_total} {job.progress_unit}"
            if line != last:
                self.stdout.write(line)
                last = line
            if job.status in Job.FINISHED:
                break
            time.sleep(2)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job {job.pk} {job.status}: {job.error}")
        self._show(job)
