"""The webhook gateways' download clients: bounds, statuses and reasons, over a mock transport."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import httpx

from wa_monitor.sources.gateway_media import (
    EvolutionMediaClient,
    GatewayMediaRef,
    WahaMediaClient,
)
from wa_monitor.sources.waha_lids import WahaLidClient

Handler = Callable[[httpx.Request], httpx.Response]
REF = GatewayMediaRef("120363418298130331@g.us", "3EB0AA", "http://waha:3000/api/files/x.jpeg")


def waha(handler: Handler) -> WahaMediaClient:
    client = WahaMediaClient("http://waha:3000", "key")
    client._http = httpx.Client(transport=httpx.MockTransport(handler), headers={"X-Api-Key": "k"})
    return client


def evolution(handler: Handler) -> EvolutionMediaClient:
    client = EvolutionMediaClient("http://evo:8080", "key", "team")
    client._http = httpx.Client(transport=httpx.MockTransport(handler))
    return client


def test_a_waha_file_is_read_whole_and_hashed() -> None:
    data = b"\xff\xd8\xff" + b"x" * 1000
    got = waha(lambda _r: httpx.Response(200, content=data)).download(REF, max_bytes=2000)
    assert got.status == "ready" and got.file is not None
    with got.file:
        assert got.file.read() == data
    assert (got.size, got.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_waha_file_over_the_bound_is_refused() -> None:
    got = waha(lambda _r: httpx.Response(200, content=b"x" * 5000)).download(REF, max_bytes=4096)
    assert got.status == "failed" and "over the limit" in got.reason and got.file is None


def test_a_refused_waha_key_is_retried_and_named() -> None:
    got = waha(lambda _r: httpx.Response(401)).download(REF, max_bytes=10)
    assert got.status == "retry" and "WAHA_API_KEY" in got.reason


def test_an_unreachable_waha_is_retried() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    got = waha(fail).download(REF, max_bytes=10)
    assert got.status == "retry" and "unreachable" in got.reason


def test_evolution_base64_and_its_data_url_form_are_decoded() -> None:
    data = b"photo bytes"
    plain = base64.b64encode(data).decode()
    for encoded in (plain, f"data:image/jpeg;base64,{plain}"):
        answer = {"base64": encoded, "mimetype": "image/jpeg"}
        got = evolution(lambda _r, a=answer: httpx.Response(200, json=a)).download(
            REF, max_bytes=100
        )
        assert got.status == "ready" and got.file is not None
        with got.file:
            assert got.file.read() == data


def test_evolution_answers_that_cannot_be_used() -> None:
    bad = evolution(lambda _r: httpx.Response(200, json={"base64": "not base64!"}))
    assert bad.download(REF, max_bytes=100).status == "failed"
    empty = evolution(lambda _r: httpx.Response(200, json={"mimetype": "image/jpeg"}))
    assert empty.download(REF, max_bytes=100).status == "retry"
    big = base64.b64encode(b"x" * 500).decode()
    large = evolution(lambda _r: httpx.Response(200, json={"base64": big}))
    assert large.download(REF, max_bytes=100).status == "failed"
    gone = evolution(lambda _r: httpx.Response(404))
    assert gone.download(REF, max_bytes=100).status == "unavailable"


def test_waha_lid_answers() -> None:
    def lid_client(handler: Handler) -> WahaLidClient:
        client = WahaLidClient("http://waha:3000", "key", "default")
        client._http = httpx.Client(transport=httpx.MockTransport(handler))
        return client

    found = lid_client(lambda _r: httpx.Response(200, json={"lid": "1@lid", "pn": "2782@c.us"}))
    assert found.phone_of("123@lid").phone == "2782"
    unknown = lid_client(lambda _r: httpx.Response(200, json={"lid": "1@lid", "pn": None}))
    assert unknown.phone_of("123@lid").status == "unknown"
    assert lid_client(lambda _r: httpx.Response(404)).phone_of("123").status == "unknown"
    assert lid_client(lambda _r: httpx.Response(502)).phone_of("123@lid").status == "retry"
    assert lid_client(lambda _r: httpx.Response(200)).phone_of("not-a-lid").status == "unknown"
