"""Round trip: Django requests with cookies → buffer → shipper chain → documents in MongoDB."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import mmdb_factory as factory
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django_project import django_project

from sitelog.config import Config
from sitelog.geodb import GeoSettings, install
from sitelog.shipper.ship import Shipper

ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Mobile Safari/537.36")


def watch(request: HttpRequest, foss: str) -> HttpResponse:
    return HttpResponse(f"watching {foss}")


urlpatterns = [path("watch/<str:foss>/", watch, name="watch")]


@pytest.fixture(scope="module", autouse=True)
def project() -> Iterator[None]:
    with django_project(__name__):
        yield



@pytest.fixture
def config(make_config, tmp_path) -> Config:
    base = make_config(shipper={"enrich": ["geoip", "useragent", "visitor", "events", "privacy"]})
    config = Config.model_validate(
        {**base.model_dump(), "visitor": {"enabled": True, "secret": "round trip"}})
    city = factory.geolite_city(tmp_path / "City.mmdb")
    sha = hashlib.sha256(city.read_bytes()).hexdigest()
    assert install(GeoSettings.from_config(config), f"{city.as_uri()}#sha256={sha}").ok
    return config


def get(client: Client, foss: str) -> None:
    response = client.get(f"/watch/{foss}/", HTTP_USER_AGENT=ANDROID,
                          HTTP_X_FORWARDED_FOR="81.2.69.160")
    assert response.status_code == 200


def test_django_requests_land_in_mongodb_with_geo_device_and_visits(config, mongo) -> None:
    from django.contrib.auth.models import User

    client = Client()
    with override_settings(SITELOG={"config": config}):
        get(client, "python")  # no cookies yet: a new visitor
        client.force_login(User.objects.create_user("asha", password="pw"))
        get(client, "linux")  # the returned cookies: same visitor, same visit
        del client.cookies["sl_visit"]  # the visit cookie expired after 30 idle minutes
        get(client, "java")
    shipper = Shipper.from_config(config)
    try:
        assert shipper.ship_pending().shipped == 3
    finally:
        shipper.close()
    docs: list[dict[str, Any]] = list(mongo.requests.find().sort("seq", 1))
    assert [doc["path"] for doc in docs] == ["/watch/python/", "/watch/linux/", "/watch/java/"]
    first, second, third = docs
    for doc in docs:
        assert doc["geo"]["city"] == "London" and doc["geo"]["country"] == "GB"
        assert (doc["device"]["browser"], doc["device"]["type"]) == ("Chrome Mobile", "mobile")
        assert doc["ip"] == "81.2.69.0"  # masked by privacy, after geoip and visitor used it
        assert doc["event"]["name"] == "page.view"
    vid = first["visitor"]["id"]
    assert first["visitor"] == {"id": vid, "visit": 1, "new_visit": True, "new_visitor": True,
                                "returning": False, "via": "cookie"}
    user_id = second["user"]["id"]
    assert second["visitor"] == {"id": vid, "visit": 1, "new_visit": False,
                                 "new_visitor": False, "returning": False, "via": "cookie",
                                 "user": user_id}
    assert third["visitor"] == {"id": vid, "visit": 2, "new_visit": True, "new_visitor": False,
                                "returning": True, "via": "cookie", "user": user_id}
    assert mongo.requests.count_documents({"visitor.id": vid, "visitor.returning": True}) == 1
