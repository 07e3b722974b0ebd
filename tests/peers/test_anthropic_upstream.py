"""The Anthropic Messages upstream the gateway tests forward to, and the app-like client that
talks to it (tests/support/gateways): both must follow the documented API, or a gateway test
could pass against something no gateway sees in the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateways import app_client
from gateways.upstream import MODEL, AnthropicUpstream

KEY = "upstream-key-7d1f3a"


@pytest.fixture
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[KEY]) as peer:
        yield peer


def test_streams_a_text_answer_in_the_documented_event_order(upstream: AnthropicUpstream) -> None:
    answer = app_client.stream_message(upstream.url, {"x-api-key": KEY}, model=MODEL)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.event_names == app_client.COMPLETE_STREAM
    assert answer.text == "pong"


def test_streams_a_tool_use_when_tools_are_sent(upstream: AnthropicUpstream) -> None:
    answer = app_client.stream_message(
        upstream.url, {"Authorization": f"Bearer {KEY}"}, model=MODEL, tools=True
    )
    assert answer.event_names == app_client.COMPLETE_STREAM
    start = dict(answer.events)["content_block_start"]["content_block"]
    assert start["type"] == "tool_use"  # type: ignore[index]
    assert start["name"] == "get_weather"  # type: ignore[index]
    assert answer.tool_input == {"city": "Paris"}
    assert dict(answer.events)["message_delta"]["delta"] == {  # type: ignore[comparison-overlap]
        "stop_reason": "tool_use",
        "stop_sequence": None,
    }


def test_answers_without_streaming_and_lists_models(upstream: AnthropicUpstream) -> None:
    answer = app_client.request(
        upstream.url,
        "POST",
        "/v1/messages",
        {"x-api-key": KEY},
        {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status == 200
    assert answer.json()["content"] == [{"type": "text", "text": "pong"}]  # type: ignore[index]
    listed = app_client.models(upstream.url, {"x-api-key": KEY})
    assert [m["id"] for m in listed.json()["data"]] == [MODEL]  # type: ignore[index]


def test_refuses_a_wrong_key_with_an_anthropic_error(upstream: AnthropicUpstream) -> None:
    answer = app_client.models(upstream.url, {"x-api-key": "not-the-key"})
    assert answer.status == 401
    assert answer.json()["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_the_app_merges_helper_headers_over_static_ones_and_adds_the_credential() -> None:
    stdout = b'{"token": "tok-1", "headers": {"X-Route": "helper"}}'
    headers = app_client.app_headers(stdout, custom={"x-route": "static", "X-Team": "a"})
    assert headers == {"X-Team": "a", "X-Route": "helper", "Authorization": "Bearer tok-1"}
    assert app_client.app_headers(b"tok-2\n", scheme="x-api-key") == {"x-api-key": "tok-2"}


def test_records_what_it_was_sent(upstream: AnthropicUpstream) -> None:
    app_client.stream_message(upstream.url, {"x-api-key": KEY, "X-Route": "r1"}, model=MODEL)
    assert upstream.saw("x-route", "r1")
    assert not upstream.saw("x-route", "r2")
