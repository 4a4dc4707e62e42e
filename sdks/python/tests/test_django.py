"""The Django middleware and decorator, with Django's test client and a real Keyward."""

from __future__ import annotations

import pytest

django = pytest.importorskip("django")
from django.conf import settings  # noqa: E402


@pytest.fixture(scope="module")
def client(server):
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["keyward.django.KeywardMiddleware"],
            KEYWARD={"base_url": server.url, "protect": ["/api/"], "permissions": "api.use"},
            INSTALLED_APPS=[],
        )
        django.setup()
    import keyward.django as kd

    kd._client = None
    from django.test import Client

    return Client()


def _views():
    from django.http import JsonResponse

    from keyward.django import require_key

    @require_key(permissions="reports.read")
    def reports(request):
        return JsonResponse({"key_id": request.keyward.key_id})

    @require_key
    def any_key(request):
        return JsonResponse({"key_id": request.keyward.key_id})

    def public(request):
        kw = request.keyward
        return JsonResponse({"key_id": kw.key_id if kw else None})

    def api(request):
        return JsonResponse({"key_id": request.keyward.key_id})

    return reports, any_key, public, api


def __getattr__(name):
    if name == "urlpatterns":
        from django.urls import path

        reports, any_key, public, api = _views()
        return [path("reports", reports), path("any", any_key), path("public", public), path("api/thing", api)]
    raise AttributeError(name)


def test_django_decorator_and_middleware(client, kw, created) -> None:
    from conftest import unique

    r = client.get("/reports")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    weak = kw.keys.create(name=unique(), permissions=["api.use"])
    good = kw.keys.create(name=unique(), permissions=["reports.read"])
    created += [weak.id, good.id]
    r = client.get("/reports", HTTP_X_API_KEY=weak.secret)
    assert r.status_code == 403 and r.json()["error"] == {
        "code": "forbidden", "message": "API key lacks the required permissions",
        "verification_code": "INSUFFICIENT_PERMISSIONS",
    }
    r = client.get("/reports", HTTP_AUTHORIZATION="Bearer " + good.secret)
    assert r.status_code == 200 and r.json() == {"key_id": good.id}
    assert client.get("/any", HTTP_X_API_KEY=weak.secret).json() == {"key_id": weak.id}
    assert client.get("/any").status_code == 401
    # the middleware: verifies when a key is sent, protects the prefixes in settings
    assert client.get("/public").json() == {"key_id": None}
    assert client.get("/public", HTTP_X_API_KEY=good.secret).json() == {"key_id": good.id}
    assert client.get("/api/thing").status_code == 401
    assert client.get("/api/thing", HTTP_X_API_KEY=good.secret).status_code == 403
    assert client.get("/api/thing", HTTP_X_API_KEY=weak.secret).json() == {"key_id": weak.id}
