"""The strict Content-Security-Policy, the production headers and the production refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "HIRFA_ENV": "production",
    "DATABASE_URL": "postgres://hirfa@127.0.0.1:5432/hirfa",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_",
}
# Every template the project renders: its own apps only, not the installed packages.
TEMPLATE_DIRS = [p for p in ROOT.glob("*/templates") if p.parent.name != ".venv"]
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)


def templates() -> list[Path]:
    return sorted(p for d in TEMPLATE_DIRS for p in d.rglob("*.html"))


def test_the_scan_sees_the_templates_and_catches_inline_code():
    assert len(templates()) > 20
    assert INLINE_SCRIPT.search('<script>alert(1)</script>')
    assert INLINE_SCRIPT.search('<script type="module">import "x";</script>')
    assert not INLINE_SCRIPT.search('<script type="module" src="/static/x.js"></script>')
    assert not INLINE_SCRIPT.search('<script id="config" type="application/json">{}</script>')
    assert INLINE_HANDLER.search('<button type="button" onclick="go()">')
    assert INLINE_STYLE.search('<span class="bar" style="--w: 3%">')


@pytest.mark.parametrize("pattern", [INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE, JAVASCRIPT_URL])
def test_no_template_has_inline_code_the_policy_would_block(pattern):
    offenders = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in templates()
        for text in [path.read_text()]
        for m in pattern.finditer(text)
    ]
    assert offenders == [], "script-src/style-src 'self' would block these (move them to static files)"


@pytest.mark.django_db
def test_every_page_carries_the_strict_policy(client):
    response = client.get(reverse("login"))
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert "camera=(self)" in response.headers["Permissions-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def _settings_in(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", f"import hub.settings as s; print({expression})"],
        check=False,
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_turns_on_hsts_and_the_https_redirect():
    result = _settings_in(
        PRODUCTION_ENV, "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.DEBUG"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https') False"


@pytest.mark.parametrize(
    "key",
    [
        "change-me-to-a-long-random-string",  # deploy/hirfa.env.example's
        "hirfa-embedded-development-key-not-for-production",
        "a-short-but-random-QX7f9",
        "x" * 80,
    ],
)
def test_production_refuses_an_example_or_short_secret_key(key):
    result = _settings_in({**PRODUCTION_ENV, "SECRET_KEY": key}, "s.SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "secrets.token_urlsafe" in result.stderr


def test_the_example_env_file_has_the_refused_placeholder():
    example = (ROOT / "deploy" / "hirfa.env.example").read_text()
    key = re.search(r"^SECRET_KEY=(.*)$", example, re.MULTILINE).group(1)
    result = _settings_in({**PRODUCTION_ENV, "SECRET_KEY": key}, "s.SECRET_KEY")
    assert result.returncode != 0 and "placeholder" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "hirfa.example.dz"])
def test_the_embedded_default_refuses_a_public_bind(host, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env["HIRFA_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--host", host, "--port", "9"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "not a loopback address" in result.stderr and "HIRFA_ENV=production" in result.stderr
    # Refused before anything was written: not even the database was migrated.
    assert not (tmp_path / "hirfa.sqlite3").exists() or (tmp_path / "hirfa.sqlite3").stat().st_size == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_count_as_loopback(host):
    from hub.cli import _is_loopback

    assert _is_loopback(host)


@pytest.mark.django_db
def test_the_api_docs_page_runs_no_inline_or_foreign_script(client):
    html = client.get("/api/docs").content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts, "the docs page has its scripts"
    assert not [s for s in scripts if INLINE_SCRIPT.match(s)]
    assert not re.search(r"<script[^>]*src=\"(https?:)?//", html)
