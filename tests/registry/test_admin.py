"""The registry admin: pages render, derived fields are read-only, bad hparams are refused with a message."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from registry.models import ModelSize


@pytest.fixture
def staff_client(client, admin_user):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("model", ["modelfamily", "modelsize", "artifact", "modelcard", "trainingrun", "evalresult"])
def test_changelists_render(staff_client, model):
    response = staff_client.get(reverse(f"admin:registry_{model}_changelist"))
    assert response.status_code == 200


def test_size_page_shows_parameter_count_and_no_stage_input(staff_client):
    size = ModelSize.objects.get(slug="gpt2-124m")
    response = staff_client.get(reverse("admin:registry_modelsize_change", args=[size.pk]))
    html = response.content.decode()
    assert "124,439,808" in html
    assert 'name="stage"' not in html


def test_size_list_uses_a_fixed_number_of_queries(staff_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        staff_client.get(reverse("admin:registry_modelsize_changelist"))


def test_adding_a_size_with_indivisible_heads_shows_the_error(staff_client):
    family = ModelSize.objects.get(slug="gpt2-124m").family
    response = staff_client.post(reverse("admin:registry_modelsize_add"), {
        "family": family.pk, "slug": "gpt2-odd", "display_name": "odd", "historical_names": "[]", "order": 9,
        "n_vocab": 50257, "n_ctx": 1024, "n_embd": 770, "n_head": 12, "n_layer": 2,
    })
    assert response.status_code == 200
    assert "must be divisible by n_head" in response.content.decode()
    assert not ModelSize.objects.filter(slug="gpt2-odd").exists()
