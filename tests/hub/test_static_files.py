"""Static files as production serves them (hub/static_files.py, deploy/nginx.conf):
collected under hashed names with gzip and brotli copies, ES module imports rewritten to
the hashed names, pages and the service worker's shell naming them, and both the hub and
nginx letting browsers keep a hashed file a year."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import brotli
import pytest
from django.test import override_settings
from django.urls import reverse

from tests.conftest import skip_or_fail
from tests.servers import free_port
from tests.topology import wait_port

ROOT = Path(__file__).resolve().parents[2]
HASHED = re.compile(r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$")
IMPORT = re.compile(r"""\b(?:import|export)\b[^;'"]*?\bfrom\s*["'](\.[^"']+)["']|\bimport\s*["'](\.[^"']+)["']""")
YEAR = 315360000  # WhiteNoise's "forever": ten years


@pytest.fixture(scope="module")
def collected(production_static):
    """The static files collected as production does (once per run: tests/conftest.py),
    with this process's settings as production's."""
    with override_settings(
        STATIC_ROOT=production_static,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "hub.static_files.FingerprintedStaticStorage"},
        },
        DEBUG=False,
        WHITENOISE_USE_FINDERS=False,
        WHITENOISE_AUTOREFRESH=False,
        WHITENOISE_MAX_AGE=60,
    ):
        yield production_static


def manifest(root: Path) -> dict[str, str]:
    return json.loads((root / "staticfiles.json").read_text())["paths"]


def test_every_module_imports_hashed_modules_that_exist(collected):
    paths = manifest(collected)
    modules = [hashed for name, hashed in paths.items() if name.endswith(".js")]
    assert len(modules) > 10
    imports = 0
    for hashed in modules:
        text = (collected / hashed).read_text(encoding="utf-8")
        for found in IMPORT.finditer(text):
            spec = found.group(1) or found.group(2)
            target = (collected / hashed).parent / spec
            assert HASHED.search(spec), f"{hashed} imports {spec}, a name that is not hashed"
            assert target.resolve().is_file(), f"{hashed} imports {spec}, which is not there"
            imports += 1
    # As many as the sources hold: none was left out by the rewriting's patterns.
    sources = [p for app in ("frontend", "gatherings", "registry") for p in (ROOT / app / "static").rglob("*.js")]
    assert imports == sum(len(IMPORT.findall(p.read_text(encoding="utf-8"))) for p in sources) > 10
    # socket.js shares its outbox with the service worker through outbox.js.
    assert re.search(r'from "\./outbox\.[0-9a-f]{12}\.js"', (collected / paths["hirfa/socket.js"]).read_text())


def test_each_hashed_text_file_has_gzip_and_brotli_copies(collected):
    for name, hashed in manifest(collected).items():
        if name.endswith((".js", ".css", ".svg")):
            original = (collected / hashed).read_bytes()
            assert gzip.decompress((collected / f"{hashed}.gz").read_bytes()) == original, name
            assert brotli.decompress((collected / f"{hashed}.br").read_bytes()) == original, name


@pytest.mark.django_db
def test_pages_and_the_service_worker_name_hashed_files_the_hub_serves_for_a_year(collected, client, amina):
    client.force_login(amina)
    page = client.get(reverse("rooms")).content.decode()
    named = sorted({url.split("#")[0] for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', page)})
    assert named and all(HASHED.search(url) for url in named), named

    worker = client.get(reverse("service_worker")).content.decode()
    shell = json.loads(re.search(r"^const SHELL = (.*);$", worker, re.MULTILINE).group(1))
    statics = [url for url in shell if url.startswith("/static/")]
    assert len(statics) == len(shell) - 1 and all(HASHED.search(url) for url in statics), shell
    assert "export " not in worker.split("const STATIC_CACHE")[0]
    assert worker.count("function outboxStore(") == 1

    for url in statics + named:
        response = client.get(url, headers={"accept-encoding": "gzip, br"})
        assert response.status_code == 200, url
        assert f"max-age={YEAR}" in response["Cache-Control"] and "immutable" in response["Cache-Control"], url
        body = b"".join(response.streaming_content)
        if url.endswith((".js", ".css", ".svg")):
            assert response["Content-Encoding"] == "br", url
            assert brotli.decompress(body) == (collected / url.removeprefix("/static/")).read_bytes()
    # A name without its hash (an old page's) is still served, briefly cached.
    response = client.get("/static/hirfa/room.js")
    assert response.status_code == 200 and response["Cache-Control"] == "max-age=60, public"


@pytest.mark.django_db
def test_the_served_service_worker_parses_and_defines_the_outbox_once(client):
    """outbox.js is the page's module and, its exports dropped, part of the worker."""
    node = shutil.which("node")
    if node is None:
        skip_or_fail("node is missing")
    source = client.get(reverse("service_worker")).content.decode()
    assert source.count("function outboxStore(") == 1
    assert "function outboxStore(" not in (ROOT / "frontend/static/hirfa/sw.js").read_text()
    assert "function outboxStore(" not in (ROOT / "frontend/static/hirfa/socket.js").read_text()
    checked = subprocess.run([node, "--check", "-"], check=False, input=source, text=True, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    # As a classic script: `export` would be a syntax error there, and so is `import`.
    assert not re.search(r"^\s*(?:export|import)\b", source, re.MULTILINE)


NGINX = "/usr/sbin/nginx"


def test_nginx_keeps_hashed_names_a_year_and_sends_the_gzip_copy(collected, tmp_path):
    """deploy/nginx.conf's /static/ location, on the files collected above."""
    if not os.path.exists(NGINX):
        skip_or_fail(f"no nginx at {NGINX}")
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    static = re.search(r"\n    # Static files,.*?\n    location /static/ \{.*?\n    \}\n", site, re.DOTALL)
    assert static, "deploy/nginx.conf: no /static/ location"
    data = tmp_path / "data"
    data.mkdir()
    (data / "static").symlink_to(collected)
    port = free_port()
    temp = tmp_path / "nginx"
    temp.mkdir()
    gzip_lines = "".join(line + "\n" for line in site.splitlines() if line.strip().startswith("gzip"))
    (tmp_path / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\n"
        "events { worker_connections 64; }\nhttp {\n    include /etc/nginx/mime.types;\n"
        f"    access_log {temp}/access.log;\n"
        + "".join(f"    {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"server {{\n    listen 127.0.0.1:{port};\n" + gzip_lines
        + static.group(0).replace("/var/lib/hirfa/", f"{data}/") + "}\n}\n"
    )
    process = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-p", str(temp)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, process, temp / "error.log")
        hashed = manifest(collected)["hirfa/room.js"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/static/{hashed}", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(response.read()) == (collected / hashed).read_bytes()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/hirfa/room.js", timeout=10) as response:
            assert response.headers["Cache-Control"] == "public, max-age=3600"
    finally:
        process.terminate()
        process.wait(timeout=10)
