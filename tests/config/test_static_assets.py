"""Files a browser fetches besides the pages: the favicon, and Swagger UI for /api/docs/ from
the installed drf-spectacular-sidecar package rather than a CDN."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_favicon_is_served_at_the_root_and_named_by_the_pages(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert b"\x89PNG" in body
    page = client.get("/accounts/login/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon is not None
    assert client.get(icon.group(1)).status_code == 200


def test_api_docs_load_swagger_ui_from_the_installed_package(client):
    html = client.get("/api/docs/").content.decode()
    assert "cdn" not in html.lower()
    scripts = re.findall(r'src="([^"]+\.js)"', html)
    assert any("swagger-ui-bundle.js" in s for s in scripts), html
    for url in scripts + re.findall(r'href="([^"]+\.css)"', html):
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
        response = client.get(url)
        assert response.status_code == 200, url
