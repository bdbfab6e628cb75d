"""Talks to a Stagegate server: manifests and fresh signed links, with the server's reasons on refusal."""

from dataclasses import dataclass
from urllib.parse import quote

import requests

TIMEOUT_S = 30


class ServerRefused(Exception):
    """The server said no; `reason` is its machine-readable code, `detail` its explanation."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{detail} ({reason}, HTTP {status})")
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: str
    bytes: int
    sha256: str


class Server:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def _call(self, method: str, path: str, params: dict | None = None, body: dict | None = None) -> dict | list:
        try:
            response = self.session.request(method, self.base_url + path, params=params, json=body,
                                            timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise ServerRefused(0, "server_unreachable", f"cannot reach {self.base_url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            if not isinstance(body, dict):
                body = {}
            retry = response.headers.get("Retry-After")
            detail = body.get("detail") or response.reason
            if retry:
                detail = f"{detail} Retry after {retry} s."
            raise ServerRefused(response.status_code, body.get("error", "error"), detail)
        return body

    def model_manifest(self, slug: str, revision: str | None = None) -> dict:
        return self._call("GET", f"/api/v1/models/{quote(slug, safe='')}/manifest/",
                          params={"revision": revision} if revision else None)

    def model_file_link(self, slug: str, filename: str, revision: str | None = None) -> Link:
        body = self._call("POST", f"/api/v1/models/{quote(slug, safe='')}/files/{quote(filename, safe='')}/link/",
                          params={"revision": revision} if revision else None)
        return Link(url=body["url"], expires_at=body["expires_at"], bytes=body["bytes"], sha256=body["sha256"])

    def dataset(self, name: str) -> dict:
        return self._call("GET", f"/api/v1/datasets/{quote(name, safe='')}/")

    def dataset_split_link(self, name: str, split: str) -> Link:
        body = self._call("POST", f"/api/v1/datasets/{quote(name, safe='')}/{quote(split, safe='')}/link/")
        return Link(url=body["url"], expires_at=body["expires_at"], bytes=body["bytes"], sha256=body["sha256"])

    # ----------------------------------------------------------------------- a partner member's own records
    def grants(self) -> list[dict]:
        return self._call("GET", "/api/v1/grants/")

    def access_questions(self, slug: str) -> list[dict]:
        return self._call("GET", f"/api/v1/access-questions/?model_size={quote(slug)}")

    def access_request(self, slug: str, purpose: str, answers: dict | None = None) -> dict:
        return self._call("POST", "/api/v1/access-requests/",
                          body={"model_size": slug, "purpose": purpose, "answers": answers or {}})

    def organisation(self) -> dict:
        return self._call("GET", "/api/v1/organisation/")

    def usage(self, days: int) -> list[dict]:
        return self._call("GET", f"/api/v1/organisation/usage/?days={days}")

    def terms(self) -> dict:
        return self._call("GET", "/api/v1/terms/")

    def terms_accept(self, version: str) -> dict:
        return self._call("POST", "/api/v1/terms/accept/", body={"version": version})
