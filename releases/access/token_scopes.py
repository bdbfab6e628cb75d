"""What a token may reach. A download token reaches only views marked `token_scope = DOWNLOAD` (manifests,
links, datasets, the catalogue, the Hub protocol, the member's own grants, requests and terms), and if it names
sizes, only those sizes' files and datasets (views name the URL argument that holds a size with
`token_size_kwarg`, one that holds a dataset with `token_dataset_kwarg`). A
governance token, or a token made outside the services (no label), reaches every call its owner may make:
the access rule and the roles still decide the rest. Checked when the token authenticates a request."""

from config.errors import DomainError
from registry.datasets.errors import DatasetNotFound
from registry.models import OutputDataset
from releases.access.models import TokenLabel

DOWNLOAD = TokenLabel.Scope.DOWNLOAD


class TokenScopeRefused(DomainError):
    code = "token_scope"
    http_status = 403


def token_scope_check(token, view, kwargs: dict) -> None:
    label = getattr(token, "label", None)
    if label is None or label.scope != DOWNLOAD:
        return
    if getattr(view, "token_scope", None) != DOWNLOAD:
        raise TokenScopeRefused("This is a download token: it reaches downloads, the catalogue and your own grants, "
                                "requests and terms only. Use a governance token (staff) or sign in.")
    if not label.sizes:
        return
    size_kwarg = getattr(view, "token_size_kwarg", None)
    slug = kwargs.get(size_kwarg) if size_kwarg else None
    if slug is not None and slug not in label.sizes:
        raise TokenScopeRefused(f"This token is limited to {', '.join(label.sizes)}; it does not reach {slug}.")
    dataset_kwarg = getattr(view, "token_dataset_kwarg", None)
    if dataset_kwarg and kwargs.get(dataset_kwarg):
        # `<name>.<split>.jsonl` or a bare name; a dataset of another size is answered as no dataset at all.
        name = str(kwargs[dataset_kwarg]).split(".", 1)[0]
        size_slug = OutputDataset.objects.filter(name=name).values_list("model_size__slug", flat=True).first()
        if size_slug is not None and size_slug not in label.sizes:
            raise DatasetNotFound(f"No dataset {name!r}.")
