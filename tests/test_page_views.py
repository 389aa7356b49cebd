"""Page views: successful GETs of no static asset, by extension, file name or content type."""

from __future__ import annotations

import pytest

from sitelog.shipper.reports.classify import Assets, Classifier, is_page_view


def request(path: str, **fields: object) -> dict[str, object]:
    return {"method": "GET", "status": 200, "path": path, **fields}


@pytest.mark.parametrize("path", [
    "/favicon.ico", "/static/site.CSS", "/app.min.js", "/app.js.map", "/img/logo.png",
    "/photo.JPEG", "/fonts/a.woff2", "/robots.txt", "/sitemap.xml", "/sitemap_index.xml",
    "/sitemap-posts.xml.gz", "/apple-touch-icon.png", "/site.webmanifest", "/video.mp4",
])
def test_static_assets_are_requests_but_no_page_views(path: str) -> None:
    assert not is_page_view(request(path))


@pytest.mark.parametrize("path", [
    "/", "/blog/post", "/index.html", "/page.php", "/v1.2/docs", "/robots", "/notes.txt",
    "/js/", "/css-tricks", "/about.", "/my.sitemap",
])
def test_pages_are_page_views(path: str) -> None:
    assert is_page_view(request(path))


def test_the_content_type_decides_where_the_record_has_one() -> None:
    assert not is_page_view(request("/avatar/7", content_type="image/webp"))
    assert not is_page_view(request("/bundle", content_type="text/javascript"))
    assert not is_page_view(request("/f", content_type="font/woff2"))
    assert is_page_view(request("/article", content_type="text/html"))
    assert not is_page_view(request("/x.css", content_type="text/html"))  # either says asset


def test_method_and_status_still_apply() -> None:
    assert not is_page_view(request("/", method="POST"))
    assert not is_page_view(request("/", status=404))
    assert is_page_view(request("/", status=304))
    assert is_page_view({"status": 200, "path": "/"})  # no method: a tailed GET-only log


def test_the_asset_rule_is_configurable() -> None:
    assets = Assets(extensions=["pdf", ".CSV"], content_types=["application/json"])
    assert not is_page_view(request("/report.PDF"), assets)
    assert not is_page_view(request("/data.csv"), assets)
    assert not is_page_view(request("/api/items", content_type="application/json"), assets)
    assert is_page_view(request("/app.js"), assets)  # the defaults are replaced, not extended
    assert Classifier(assets=assets).assets is assets
