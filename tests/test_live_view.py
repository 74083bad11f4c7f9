"""The Live calls wallboard's logic (``ser_lib.app.live_view``): tables from the service's JSON, the
timeline rebuilt from a call's record, and every way the service can be unreachable."""

from __future__ import annotations

import http.server
import json
import threading

import pandas as pd
import pytest

from conftest import generated_call_analysis
from ser_lib.app import live_view as lv
from ser_lib.app import plots_timeline as pt
from ser_lib.service.server import free_port
from ser_lib.service.sessions import timeline_tables

OVERVIEW = {
    "schema": "ser-live/1",
    "active": 1,
    "calls": [
        {
            "call_id": "CA1",
            "status": "active",
            "duration_s": 75.2,
            "lag_s": 0.12,
            "parties": {
                "agent": {"emotion": "neutral", "sentiment": 0.02, "sparkline": [0.0, 0.05, 0.02]},
                "customer": {"emotion": "angry", "sentiment": -0.81, "sparkline": [-0.1, -0.5, -0.81]},
            },
            "alerts": [{"kind": "emotion_spike", "message": "customer angry 0.83 at 01:05-01:08", "role": "customer"}],
            "alert_count": 1,
        },
        {
            "call_id": "CA2",
            "status": "completed",
            "duration_s": 30.0,
            "lag_s": 0.0,
            "parties": {"caller": {"emotion": None, "sparkline": []}},
            "alerts": [],
            "alert_count": 0,
        },
    ],
}


def test_the_table_has_each_partys_emotion_sentiment_and_trend():
    table = lv.calls_table(OVERVIEW)
    assert list(table.columns) == [
        "call",
        "status",
        "duration",
        "customer",
        "customer sentiment",
        "customer trend",
        "agent",
        "agent sentiment",
        "agent trend",
        "caller",
        "caller sentiment",
        "caller trend",
        "alerts",
        "last alert",
        "lag (s)",
    ]
    first, second = table.to_dict(orient="records")
    assert (first["call"], first["duration"], first["customer"], first["customer sentiment"]) == ("CA1", "01:15", "angry", -0.81)
    assert first["customer trend"] == [-0.1, -0.5, -0.81] and first["alerts"] == 1 and "angry 0.83" in first["last alert"]
    assert (second["customer"], second["caller"], second["alerts"], second["last alert"]) == ("—", "—", 0, "")
    assert lv.call_label(first) == "CA1 · active · 01:15 · ⚠ 1 alert(s)" and lv.call_label(second) == "CA2 · completed · 00:30"
    styles = lv.highlight_alerts(table)._compute().ctx  # (row, column) -> CSS of each cell
    assert styles[(0, 0)] and not styles.get((1, 0))
    assert lv.calls_table({"active": 0, "calls": []}).empty


def test_a_calls_record_gives_the_call_timeline_figure_back():
    result = generated_call_analysis()
    detail = {
        **json.loads(result.to_json()),
        "timeline": json.loads(json.dumps(timeline_tables(result))),  # as it travels over HTTP
        "alerts": [
            {"start_s": 33.0, "end_s": 43.0, "role": "customer", "kind": "sustained_negative", "value": -0.8, "message": "m"}
        ],
    }
    data = lv.timeline_data(detail)
    assert data.roles == ["agent", "customer"] and data.duration_s == 60.0 and data.worst == result.summary["worst_moments"]
    pd.testing.assert_frame_equal(
        data.windows[["channel", "role", "start_s", "end_s", "sentiment"]],
        result.windows[["channel", "role", "start_s", "end_s", "sentiment"]].round(4),
        check_dtype=False,
    )
    assert data.speech["judged"].dtype == bool and (~data.speech["judged"]).sum() == 1  # the customer's short "yes"
    assert list(data.segments["emotion"]) == list(result.segments["emotion"])
    fig = pt.timeline_figure(
        data.segments, data.windows, roles=data.roles, duration_s=data.duration_s, worst=data.worst, speech=data.speech
    )
    names = {t.name for t in fig.data}
    assert {"agent sentiment", "customer sentiment", "angry", "worst moments"} <= names
    alerts = lv.alerts_table(detail)
    assert alerts.to_dict(orient="records") == [
        {"time": "00:33-00:43", "party": "customer", "kind": "negative sentiment", "value": -0.8, "message": "m"}
    ]
    cards = {c["role"]: c for c in lv.party_summary(detail)}
    assert cards["customer"]["dominant"] == "angry" and cards["customer"]["trend"] == "worsening"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path.startswith("/calls"):
            code, body = (
                (401, b'{"error": "not authorised"}') if "Authorization" not in self.headers else (200, b"<html>hi</html>")
            )
        else:
            code, body = 500, b'{"error": "broken"}'
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_service():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_unreachable_service_says_how_to_start_one(fake_service, monkeypatch):
    monkeypatch.delenv(lv.TOKEN_ENV, raising=False)
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(lv.ServiceUnavailable, match=f"No live call service answers at {nobody}"):
        lv.calls_overview(nobody)
    with pytest.raises(lv.ServiceUnavailable, match="needs its token"):
        lv.calls_overview(fake_service)
    with pytest.raises(lv.ServiceUnavailable, match="did not answer with JSON"):
        lv.calls_overview(fake_service, token="t" * 20)
    with pytest.raises(lv.ServiceUnavailable, match="answered 500 for /healthz: broken"):
        lv.health(fake_service)
    with pytest.raises(lv.ServiceUnavailable, match="must start with http"):
        lv.calls_overview("ftp://example")
    text = lv.how_to_start("http://127.0.0.1:9999")
    assert "python -m ser_lib serve --port 9999" in text and "simulate-calls --url ws://127.0.0.1:9999/twilio" in text


def test_the_address_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(lv.URL_ENV, "http://10.0.0.5:9000/")
    monkeypatch.setenv(lv.TOKEN_ENV, "secret-token-123456")
    assert lv.service_url() == "http://10.0.0.5:9000" and lv.service_url("http://h:1") == "http://h:1"
    assert lv.service_token() == "secret-token-123456" and lv.service_token("x") == "x"
    monkeypatch.delenv(lv.URL_ENV)
    assert lv.service_url() == lv.DEFAULT_URL == "http://127.0.0.1:8765"
