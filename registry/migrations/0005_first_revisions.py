"""Revisions: every size's existing files become its revision 1, at the stage the size had; a size without files
gets a revision without files (GPT-2's record), so its 2019 history carries over. Files stay where they are
(their keys are referenced, not copied); new files go to content-addressed keys. Datasets record the revision
they were sampled from and get a stage of their own (published ones: public; their history is recorded by
releases' migration before `published_at` goes, in 0007)."""

from django.db import migrations

from registry.revision_ids import revision_id


def _hparams(size) -> dict:
    return {name: getattr(size, name) for name in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")}


def first_revisions(apps, schema_editor):
    ModelSize = apps.get_model("registry", "ModelSize")
    Revision = apps.get_model("registry", "Revision")
    Artifact = apps.get_model("registry", "Artifact")
    EvalResult = apps.get_model("registry", "EvalResult")
    OutputDataset = apps.get_model("registry", "OutputDataset")
    for size in ModelSize.objects.all():
        artifacts = list(Artifact.objects.filter(model_size=size))
        hparams = _hparams(size)
        training_runs = {a.training_run_id for a in artifacts if a.training_run_id}
        revision = Revision.objects.create(
            model_size=size, number=1, hparams=hparams, stage=size.stage,
            revision=revision_id([(a.filename, a.bytes, a.sha256) for a in artifacts], hparams),
            training_run_id=training_runs.pop() if len(training_runs) == 1 else None,
            note="The size's files as they stood when revisions were introduced." if artifacts
            else "The size's record, without files.")
        Artifact.objects.filter(model_size=size).update(revision=revision)
        EvalResult.objects.filter(model_size=size, training_run__isnull=False).update(revision=revision)
        OutputDataset.objects.filter(model_size=size).update(revision=revision)
    OutputDataset.objects.filter(published_at__isnull=False).update(stage="public")


class Migration(migrations.Migration):
    dependencies = [("registry", "0004_revisions")]

    operations = [migrations.RunPython(first_revisions, migrations.RunPython.noop)]
