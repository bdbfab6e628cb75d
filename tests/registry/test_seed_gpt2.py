from django.core.management import call_command
from django.forms.models import model_to_dict

from registry.models import EvalResult, ModelCard, ModelFamily, ModelSize


def _snapshot() -> dict:
    """Every seeded row with all its fields, including timestamps that only a real change would move."""
    return {
        model.__name__: [(row.pk, model_to_dict(row), getattr(row, "updated_at", None))
                         for row in model.objects.order_by("pk")]
        for model in (ModelFamily, ModelSize, ModelCard, EvalResult)
    }


def test_seed_records_gpt2_sizes_with_their_real_hparams(db):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    large = ModelSize.objects.get(slug="gpt2-774m")
    assert (large.n_embd, large.n_head, large.n_layer, large.n_ctx, large.n_vocab) == (1280, 20, 36, 1024, 50257)
    assert large.historical_names == ["762M", "large"]
    assert ModelSize.objects.get(slug="gpt2-124m").parameter_count == 124_439_808
    assert EvalResult.objects.get(model_size__slug="gpt2-1558m", dataset="WikiText-2").value == 18.34
    assert "WebText" in ModelCard.objects.get(model_size__slug="gpt2-124m").details


def test_mini_family_follows_gpt2_progression_scaled_down(db):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    minis = list(ModelSize.objects.filter(family__slug="mini").order_by("order"))
    assert [s.n_layer for s in minis] == sorted(s.n_layer for s in minis)
    assert len(minis) == 4
    assert minis[-1].parameter_count < 20_000_000
    assert all(s.n_embd // s.n_head == 64 for s in minis)


def test_seeding_twice_changes_nothing(db):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    before = _snapshot()
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    assert _snapshot() == before
