"""Production logs: one JSON object per line, with the request's or socket's id."""

from __future__ import annotations

import json
import logging

import pytest

from hub import logs


def record(message: str, *, exc: bool = False) -> logging.LogRecord:
    try:
        if exc:
            raise ValueError("broken")
    except ValueError:
        import sys

        return logging.LogRecord("hub.x", logging.ERROR, __file__, 1, message, (), sys.exc_info())
    return logging.LogRecord("hub.x", logging.INFO, __file__, 1, message, (), None)


def test_a_line_is_one_json_object_with_the_ids_in_context():
    token = logs.conn_id.set("c0ffee")
    try:
        line = logs.JsonFormatter().format(record("Salam « وهران »\nsecond line"))
    finally:
        logs.conn_id.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "Salam « وهران »\nsecond line"
    assert (entry["level"], entry["logger"], entry["conn_id"]) == ("INFO", "hub.x", "c0ffee")
    assert "request_id" not in entry
    assert "ValueError: broken" in json.loads(logs.JsonFormatter().format(record("x", exc=True)))["exc"]


@pytest.mark.django_db
def test_a_request_keeps_nginx_s_request_id_or_gets_one(client):
    response = client.get("/login/", HTTP_X_REQUEST_ID="abc123")
    assert response["X-Request-ID"] == "abc123"
    forged = client.get("/login/", HTTP_X_REQUEST_ID='"}, "level": "forged')
    assert len(forged["X-Request-ID"]) == 32 and forged["X-Request-ID"].isalnum()
