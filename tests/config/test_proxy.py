"""The reverse proxy: docker/nginx/nginx.conf.template is valid nginx, the Compose file with its
proxy service validates, and nginx run from that template (bench/nginx_local.py, as for the
load benchmark) serves static files itself and passes labeling through to the application."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import requests
import yaml

from labeling.models import Label
from labeling.simulation import RunOptions, ensure_simulated_labelers, run_simulation
from tests.conftest import require
from tests.factories import ComparisonFactory, TaskFactory

ROOT = Path(__file__).resolve().parents[2]


def nginx_local():
    spec = importlib.util.spec_from_file_location(
        "bench_nginx_local", ROOT / "bench" / "nginx_local.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def nginx():
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    require(found is not None, "Debian's nginx")
    return nginx_local()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rendering_fills_every_proxy_variable_and_leaves_nginx_variables(nginx):
    values = {
        name: "x"
        for name in (
            "PROXY_LISTEN",
            "PROXY_UPSTREAM",
            "PROXY_RESOLVER",
            "PROXY_STATIC_ROOT",
            "PROXY_TEMP_DIR",
            "PROXY_ACCESS_LOG",
            "PROXY_USER",
        )
    }
    text = nginx.render(nginx.TEMPLATE.read_text(), values)
    assert "PROXY_" not in text.replace("# ", "").split("user x;", 1)[1]
    assert "$proxy_add_x_forwarded_for" in text and "$http_x_forwarded_proto" in text
    with pytest.raises(KeyError, match="PROXY_USER"):
        nginx.render("user ${PROXY_USER};", {})


def test_the_template_is_valid_nginx(nginx, tmp_path):
    config = nginx.local_config(
        run_dir=tmp_path,
        listen=f"127.0.0.1:{free_port()}",
        upstreams=["127.0.0.1:9", "127.0.0.1:10"],
        static_root=tmp_path,
    )
    nginx.check_config(config)  # nginx -t


def test_compose_validates_with_the_proxy_in_front_of_a_scalable_web():
    compose = shutil.which("docker-compose")
    require(compose is not None, "docker-compose (Debian package)")
    env = {**os.environ, "DJANGO_SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "pw"}
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    proxy, web = services["proxy"], services["web"]
    assert proxy["image"].startswith("nginx:") and proxy["ports"][0]["target"] == 80
    assert "server web:8000 resolve" in proxy["environment"]["PROXY_UPSTREAM"]
    assert proxy["environment"]["PROXY_RESOLVER"].startswith("resolver 127.0.0.11 ")
    assert proxy["healthcheck"]["test"][-1].endswith("/healthz?live=1")
    # Only the proxy publishes a port: `--scale web=N` starts N replicas without a clash.
    assert "ports" not in web and web["expose"] == ["8000"]
    assert str(web["environment"]["NUM_PROXIES"]) == "1"
    assert "static" in str(proxy["volumes"])


@pytest.mark.slow
def test_nginx_serves_static_files_and_passes_labeling_through(nginx, live_server, tmp_path):
    static = tmp_path / "www" / "static" / "js"
    static.mkdir(parents=True)
    (static / "app.0123456789ab.js").write_text("console.log('hashed');\n")
    (static / "plain.js").write_text("console.log('plain');\n")
    parts = urllib.parse.urlparse(live_server.url)
    port = free_port()
    config = nginx.local_config(
        run_dir=tmp_path / "run",
        listen=f"127.0.0.1:{port}",
        upstreams=[f"{parts.hostname}:{parts.port}"],
        static_root=tmp_path / "www",
    )
    process = nginx.start(config, port=port)
    base = f"http://127.0.0.1:{port}"
    try:
        hashed = requests.get(f"{base}/static/js/app.0123456789ab.js", timeout=10)
        assert hashed.status_code == 200 and "hashed" in hashed.text  # not in the app's files
        assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        plain = requests.get(f"{base}/static/js/plain.js", timeout=10)
        assert plain.status_code == 200 and plain.headers["Cache-Control"] == "max-age=3600"
        assert requests.get(f"{base}/proxy-health", timeout=10).text == "ok\n"
        assert requests.get(f"{base}/healthz?live=1", timeout=10).json()["status"] == "ok"

        task = TaskFactory(k=3)
        for i in range(4):
            ComparisonFactory(task=task, prompt__text=f"Prompt {i}")
        names = ensure_simulated_labelers(task=task, count=1)
        options = RunOptions(base_url=base, task_id=task.pk, preference="random", limit=3)
        stats = run_simulation(options, names)
    finally:
        nginx.stop(process)
    assert stats.labels == 3 and stats.errors == 0
    assert Label.objects.filter(task=task).count() == 3


def test_the_compose_values_make_a_valid_configuration(nginx, tmp_path):
    """Compose's PROXY_ values through the same template (the upstream, user and paths of this
    machine instead of the container's; Debian's nginx predates `resolve`)."""
    compose = shutil.which("docker-compose")
    require(compose is not None, "docker-compose (Debian package)")
    env = {**os.environ, "DJANGO_SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "pw"}
    rendered = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    values = yaml.safe_load(rendered.stdout)["services"]["proxy"]["environment"]
    values = {k: str(v) for k, v in values.items() if k.startswith("PROXY_")}
    local = nginx.local_config(
        run_dir=tmp_path, listen="127.0.0.1:1", upstreams=["127.0.0.1:9"], static_root=tmp_path
    )
    local_values = {
        "PROXY_UPSTREAM": "server 127.0.0.1:9;",
        "PROXY_USER": nginx.getpass.getuser(),
        "PROXY_TEMP_DIR": str(tmp_path / "temp"),
        "PROXY_STATIC_ROOT": str(tmp_path),
    }
    used = {a or b for a, b in nginx.PROXY_VARIABLE.findall(nginx.TEMPLATE.read_text())}
    assert set(values) == used  # Compose sets every variable the template uses
    local.write_text(nginx.render(nginx.TEMPLATE.read_text(), {**values, **local_values}))
    nginx.check_config(local)
