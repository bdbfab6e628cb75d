"""PostgreSQL connections bind parameters on the server and prepare the statements they repeat."""

import pytest
from django.db import connection

from registry.models import ModelSize


@pytest.mark.django_db
def test_a_statement_run_five_times_is_prepared_once_and_reused():
    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                           ["%registry_modelsize%"])
            return cursor.fetchone()[0]

    assert prepared() == 0
    for slug in ("a", "b", "c", "d"):
        list(ModelSize.objects.filter(slug=slug))
    assert prepared() == 0  # planned afresh each time so far
    for slug in ("e", "f"):
        list(ModelSize.objects.filter(slug=slug))
    assert prepared() == 1  # the fifth run prepared it; the sixth, with other parameters, reused it
