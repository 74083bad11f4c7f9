"""The Live calls page with ``streamlit.testing.v1.AppTest`` against a running test service: no
service, a refused token, and a service with a finished call and one in progress (held open by a
client while the page reads it)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from websockets.asyncio.client import connect

from call_audio import SR, make_call, tiny_bundle
from ser_lib.service import ServiceSettings
from ser_lib.service.server import BackgroundServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "7_Live_calls.py")
TOKEN = "page-token-0123456789"
ANGRY = [("agent", "neutral", 0.5, 3.5), ("customer", "angry", 4.6, 6.0), ("agent", "neutral", 11.0, 2.5)]


def pcm(x: np.ndarray) -> bytes:
    return np.round(x.T * 32768).clip(-32768, 32767).astype("<i2").tobytes()


async def _raw_call(url: str, call_id: str, x: np.ndarray, *, hold: threading.Event | None = None, started=None) -> None:
    start = {"sample_rate": SR, "channels": 2, "encoding": "pcm_s16le", "parties": ["agent", "customer"], "call_id": call_id}
    async with connect(url + "/stream") as ws:
        await ws.send(json.dumps(start))
        data = pcm(x)
        for i in range(0, len(data), 6400):
            await ws.send(data[i : i + 6400])
        if hold is not None:
            await ws.ping()
            started.set()
            await asyncio.to_thread(hold.wait)
        await ws.send('{"event": "stop"}')
        async for _ in ws:
            pass


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A service with one finished call ('finished-angry') and one in progress ('in-progress')."""
    bundle = tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")
    x = make_call(ANGRY, total_s=14.0)
    with BackgroundServer(ServiceSettings(results=tmp_path_factory.mktemp("page_results")), bundle=bundle) as server:
        asyncio.run(_raw_call(server.ws_url, "finished-angry", x))
        hold, started = threading.Event(), threading.Event()
        holder = threading.Thread(
            target=lambda: asyncio.run(_raw_call(server.ws_url, "in-progress", x[:, : 10 * SR], hold=hold, started=started))
        )
        holder.start()
        assert started.wait(60)
        try:
            yield server
        finally:
            hold.set()
            holder.join(60)


def open_page(monkeypatch, url: str, token: str | None = None) -> AppTest:
    monkeypatch.setenv("SER_SERVICE_URL", url)
    if token:
        monkeypatch.setenv("SER_SERVICE_TOKEN", token)
    else:
        monkeypatch.delenv("SER_SERVICE_TOKEN", raising=False)
    return AppTest.from_file(PAGE, default_timeout=120).run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_without_a_service_the_page_says_how_to_start_one(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    at = open_page(monkeypatch, url)
    assert not at.exception and not at.error, texts(at.exception) + texts(at.error)
    assert f"No live call service answers at {url}" in texts(at.warning)
    shown = texts(at.markdown)
    assert "python -m ser_lib serve --port" in shown and "simulate-calls --url ws://127.0.0.1:" in shown
    assert not at.dataframe and not at.get("plotly_chart")


def test_the_wallboard_lists_the_calls_and_follows_the_chosen_one(monkeypatch, service):
    import time

    deadline = time.monotonic() + 30  # the call in progress has had its first windows scored
    while True:
        at = open_page(monkeypatch, service.url)
        table = at.dataframe[0].value
        if (table["call"] == "in-progress").any() and table.set_index("call").loc["in-progress", "customer"] != "—":
            break
        assert time.monotonic() < deadline, table
    assert not at.exception and not at.error, texts(at.exception) + texts(at.error)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Active calls"] == "1" and metrics["Calls listed"] == "2" and metrics["Calls with alerts"] == "2"
    assert list(table["call"]) == ["in-progress", "finished-angry"]  # active calls first
    assert list(table["status"]) == ["active", "completed"]
    rows = table.set_index("call")
    assert rows.loc["finished-angry", "customer"] == "angry" and rows.loc["finished-angry", "agent"] == "neutral"
    assert rows.loc["finished-angry", "customer sentiment"] < -0.3 and len(rows.loc["finished-angry", "customer trend"]) >= 3
    assert rows.loc["finished-angry", "alerts"] >= 1 and "customer angry" in rows.loc["finished-angry", "last alert"]
    picker = at.selectbox(key="live_call")
    assert picker.value == "in-progress" and "⚠" in picker.format_func("finished-angry")
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "customer sentiment" in {t.get("name") for t in figure["data"]}  # the Call timeline page's figure, growing
    picker.set_value("finished-angry")
    at.run()
    assert not at.exception and not at.error
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name") for t in figure["data"]}
    assert {"agent sentiment", "customer sentiment", "angry"} <= names
    assert "Alerts" in texts(at.subheader) and "emotion spike" in at.dataframe[1].value["kind"].tolist()
    assert {m.label: m.value for m in at.metric}["customer: mostly"] == "angry"


def test_a_service_with_a_token_needs_it(monkeypatch, tmp_path_factory):
    bundle = tiny_bundle(tmp_path_factory.getbasetemp() / "tiny_call_model")
    settings = ServiceSettings(results=tmp_path_factory.mktemp("page_token_results"), token=TOKEN)
    with BackgroundServer(settings, bundle=bundle) as server:
        at = open_page(monkeypatch, server.url)
        assert "needs its token" in texts(at.warning) and "SER_SERVICE_TOKEN" in texts(at.warning)
        at = open_page(monkeypatch, server.url, token=TOKEN)
        assert not at.warning and "no calls yet" in texts(at.info)
