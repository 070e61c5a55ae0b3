"""Genesys client behaviour: region hosts, token reuse, one refresh on 401, Retry-After, 5xx, permanent 4xx."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from tests.support.contracts import CONTRACTS
from xypr.backends.cache.base import Cache
from xypr.backends.cache.memory import MemoryCache
from xypr.core.errors import PermanentError, TransientError
from xypr.genesys import client as genesys_client
from xypr.genesys.client import GenesysClient, GenesysCredentials, api_base, login_base
from xypr.tenants.schemas import GENESYS_REGIONS

API = "https://api.mypurecloud.ie"
LOGIN = "https://login.mypurecloud.ie"
INTEGRATION = "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11"
MESSAGE = {"channel": {"from": {"id": "16505551234", "idType": "Phone"}, "time": "2026-11-21T10:00:00.000Z"},
           "text": "hello"}  # fmt: skip


def tenant(tenant_id: str = "tenant-1") -> GenesysCredentials:
    """A tenant in the mypurecloud.ie region with made-up credentials."""
    return GenesysCredentials(
        tenant_id=tenant_id,
        region="mypurecloud.ie",
        client_id="client-id",
        integration_id=INTEGRATION,
        client_secret="client-secret",
    )


@dataclass
class FakeGenesys:
    """Login + Open Messaging over `httpx.MockTransport`: counts tokens, scripts answers of the API."""

    # Event-loop turns a login takes: the other requests run meanwhile (a slow login, without a clock).
    login_turns: int = 0
    answers: list[httpx.Response] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    live_tokens: set[str] = field(default_factory=set)
    calls: list[httpx.Request] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            assert request.url.host == "login.mypurecloud.ie"
            credentials = base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode()
            assert credentials == "client-id:client-secret"
            assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"]}
            for _ in range(self.login_turns):
                await asyncio.sleep(0)
            token = f"token-{len(self.tokens_issued) + 1}"
            self.tokens_issued.append(token)
            self.live_tokens.add(token)
            return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": 86399})
        assert request.url.host == "api.mypurecloud.ie"
        self.calls.append(request)
        if request.headers["authorization"].removeprefix("Bearer ") not in self.live_tokens:
            return httpx.Response(401, json={"code": "bad.credentials", "status": 401})
        if self.answers:
            return self.answers.pop(0)
        return httpx.Response(200, json={"id": f"genesys-{len(self.calls)}", "conversationId": "conversation-1"})

    def expire_tokens(self) -> None:
        self.live_tokens.clear()


def client_for(fake: FakeGenesys, cache: Cache) -> GenesysClient:
    """A client as one worker process would have it (own HTTP client and locks, shared cache)."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    return GenesysClient(http, cache)


@pytest.fixture
def fake() -> FakeGenesys:
    return FakeGenesys()


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


def _published_regions() -> list[str]:
    text = (CONTRACTS / "README.md").read_text()
    hosts = text.split("domains include", 1)[1].split("**Token.**", 1)[0]
    return re.findall(r"`([a-z0-9.-]+)`", hosts)


def test_every_published_region_is_accepted_for_tenants() -> None:
    regions = _published_regions()
    assert len(regions) == 16
    assert set(regions) == GENESYS_REGIONS


@pytest.mark.parametrize("region", sorted(GENESYS_REGIONS))
def test_region_maps_to_api_and_login_hosts(region: str) -> None:
    assert api_base(region) == f"https://api.{region}"
    assert login_base(region) == f"https://login.{region}"


def test_configured_hosts_override_the_region() -> None:
    assert api_base("mypurecloud.ie", "http://127.0.0.1:3000/sandbox/genesys/") == (
        "http://127.0.0.1:3000/sandbox/genesys"
    )
    assert login_base("mypurecloud.ie", "http://127.0.0.1:9/") == "http://127.0.0.1:9"


async def test_message_is_posted_with_prefetch_conversation_id_and_answer_returned(
    fake: FakeGenesys, cache: Cache
) -> None:
    client = client_for(fake, cache)

    answer = await client.send(tenant(), "message", MESSAGE)

    (call,) = fake.calls
    assert call.method == "POST"
    assert call.url.path == f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message"
    assert call.url.params["prefetchConversationId"] == "true"
    assert call.headers["content-type"] == "application/json"
    assert orjson.loads(call.content) == MESSAGE
    assert answer == {"id": "genesys-1", "conversationId": "conversation-1"}


@pytest.mark.parametrize(
    ("kind", "path"),
    [("receipt", "receipt"), ("event", "event"), ("structured", "structured/response")],
)
async def test_receipts_events_and_structured_answers_go_to_their_endpoint_without_prefetch(
    fake: FakeGenesys, cache: Cache, kind: str, path: str
) -> None:
    await client_for(fake, cache).send(tenant(), kind, {"id": "x"})

    (call,) = fake.calls
    assert call.url.path == f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/{path}"
    assert "prefetchConversationId" not in call.url.params


async def test_many_requests_of_two_processes_share_one_token(fake: FakeGenesys, cache: Cache) -> None:
    fake.login_turns = 200  # a slow login makes the race real
    first, second = client_for(fake, cache), client_for(fake, cache)

    await asyncio.gather(*(each.send(tenant(), "message", MESSAGE) for each in [first, second] * 20))

    assert fake.tokens_issued == ["token-1"]
    assert len(fake.calls) == 40
    assert {call.headers["authorization"] for call in fake.calls} == {"Bearer token-1"}


class CountingCache(MemoryCache):
    """The shared cache, counting reads of the token."""

    def __init__(self) -> None:
        super().__init__()
        self.token_reads = 0

    async def get(self, key: str) -> bytes | None:
        if key.endswith(":genesys-token"):
            self.token_reads += 1
        return await super().get(key)


async def test_a_process_keeps_the_shared_token_for_a_while_without_reading_the_cache_each_call(
    fake: FakeGenesys,
) -> None:
    cache = CountingCache()
    client = client_for(fake, cache)
    await client.send(tenant(), "message", MESSAGE)
    reads = cache.token_reads

    for _ in range(10):
        await client.send(tenant(), "message", MESSAGE)

    assert cache.token_reads == reads
    assert fake.tokens_issued == ["token-1"]


async def test_once_the_memo_runs_out_the_shared_token_is_read_again(
    fake: FakeGenesys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(genesys_client, "TOKEN_MEMO_SECONDS", 0.0)
    cache = CountingCache()
    client = client_for(fake, cache)
    await client.send(tenant(), "message", MESSAGE)
    reads = cache.token_reads

    await client.send(tenant(), "message", MESSAGE)

    assert cache.token_reads == reads + 1


async def test_changed_credentials_never_use_the_token_a_process_kept(fake: FakeGenesys, cache: Cache) -> None:
    first, second = client_for(fake, cache), client_for(fake, cache)
    before = tenant()
    after = dataclasses.replace(before, integration_id="6f4d8b63-1e2c-4a6f-8b72-8d3c9e0f1a22")
    await first.send(before, "message", MESSAGE)
    # Another process stores the new credentials: it drops the shared token and fetches a new one.
    await second.forget_token(before)
    await second.send(after, "message", MESSAGE)

    await first.send(after, "message", MESSAGE)

    assert fake.tokens_issued == ["token-1", "token-2"]
    assert fake.calls[-1].headers["authorization"] == "Bearer token-2"
    assert INTEGRATION not in str(fake.calls[-1].url)


async def test_a_token_refused_in_one_process_is_replaced_there_at_once(fake: FakeGenesys, cache: Cache) -> None:
    client = client_for(fake, cache)
    await client.send(tenant(), "message", MESSAGE)
    fake.expire_tokens()

    await client.send(tenant(), "message", MESSAGE)
    await client.send(tenant(), "message", MESSAGE)

    assert [call.headers["authorization"] for call in fake.calls] == [
        "Bearer token-1",
        "Bearer token-1",  # refused
        "Bearer token-2",
        "Bearer token-2",  # the kept token is the new one
    ]


async def test_a_forced_refresh_fetches_a_new_token_even_when_the_process_kept_one(
    fake: FakeGenesys, cache: Cache
) -> None:
    client = client_for(fake, cache)
    await client.send(tenant(), "message", MESSAGE)
    await cache.delete("tenant-1:genesys-token")  # the shared copy ran out; this process still keeps token-1

    status = await client.refresh_token(tenant())

    assert fake.tokens_issued == ["token-1", "token-2"]
    assert status.cached
    await client.send(tenant(), "message", MESSAGE)
    assert fake.calls[-1].headers["authorization"] == "Bearer token-2"


async def test_tenants_get_a_token_each(fake: FakeGenesys, cache: Cache) -> None:
    client = client_for(fake, cache)

    await client.send(tenant("tenant-1"), "message", MESSAGE)
    await client.send(tenant("tenant-2"), "message", MESSAGE)
    await client.send(tenant("tenant-1"), "message", MESSAGE)

    assert fake.tokens_issued == ["token-1", "token-2"]


async def test_expired_token_is_refreshed_once_and_the_call_retried(fake: FakeGenesys, cache: Cache) -> None:
    client = client_for(fake, cache)
    await client.send(tenant(), "message", MESSAGE)
    fake.expire_tokens()

    answer = await client.send(tenant(), "message", MESSAGE)

    assert answer["id"] == "genesys-3"  # call 2 was refused, call 3 went through
    assert fake.tokens_issued == ["token-1", "token-2"]
    assert [call.headers["authorization"] for call in fake.calls] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_expiry_seen_by_many_requests_of_two_processes_fetches_one_new_token(
    fake: FakeGenesys, cache: Cache
) -> None:
    first, second = client_for(fake, cache), client_for(fake, cache)
    await first.send(tenant(), "message", MESSAGE)
    fake.expire_tokens()
    fake.login_turns = 200

    await asyncio.gather(*(each.send(tenant(), "message", MESSAGE) for each in [first, second] * 10))

    assert fake.tokens_issued == ["token-1", "token-2"]


async def test_a_fresh_token_refused_again_is_a_transient_error_and_is_dropped(fake: FakeGenesys, cache: Cache) -> None:
    client = client_for(fake, cache)
    fake.answers = [httpx.Response(401, json={"code": "bad.credentials"})] * 2
    fake.live_tokens.add("token-1")  # the scripted 401s answer although the token is live

    with pytest.raises(TransientError) as caught:
        await client.send(tenant(), "message", MESSAGE)

    assert caught.value.upstream_code == 401
    assert len(fake.calls) == 2  # exactly one refresh and one retry, no loop
    assert await cache.get("tenant-1:genesys-token") is None


async def test_429_is_transient_and_carries_retry_after_seconds(fake: FakeGenesys, cache: Cache) -> None:
    fake.answers = [httpx.Response(429, headers={"Retry-After": "7"}, json={"code": "too.many.requests"})]

    with pytest.raises(TransientError) as caught:
        await client_for(fake, cache).send(tenant(), "message", MESSAGE)

    assert caught.value.retry_after == 7.0
    assert "429" in caught.value.message


async def test_retry_after_as_an_http_date_is_honoured(fake: FakeGenesys, cache: Cache) -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    fake.answers = [httpx.Response(429, headers={"Retry-After": format_datetime(later, usegmt=True)})]

    with pytest.raises(TransientError) as caught:
        await client_for(fake, cache).send(tenant(), "message", MESSAGE)

    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_server_errors_are_transient(fake: FakeGenesys, cache: Cache, status: int) -> None:
    fake.answers = [httpx.Response(status, json={"code": "service.unavailable"})]

    with pytest.raises(TransientError):
        await client_for(fake, cache).send(tenant(), "message", MESSAGE)


async def test_network_errors_are_transient(cache: Cache) -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = GenesysClient(httpx.AsyncClient(transport=httpx.MockTransport(refuse)), cache)

    with pytest.raises(TransientError, match="unreachable"):
        await client.send(tenant(), "message", MESSAGE)


@pytest.mark.parametrize("status", [400, 403, 404, 413])
async def test_other_4xx_are_permanent_with_genesys_error_text(fake: FakeGenesys, cache: Cache, status: int) -> None:
    fake.answers = [httpx.Response(status, json={"code": "bad.request", "message": "channel.time: required"})]

    with pytest.raises(PermanentError) as caught:
        await client_for(fake, cache).send(tenant(), "message", MESSAGE)

    assert caught.value.upstream_code == status
    assert f"HTTP {status}" in caught.value.message
    assert "channel.time: required" in caught.value.message


async def test_refused_client_credentials_are_permanent(cache: Cache) -> None:
    async def login(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    client = GenesysClient(httpx.AsyncClient(transport=httpx.MockTransport(login)), cache)

    with pytest.raises(PermanentError, match="refused the client credentials") as caught:
        await client.send(tenant(), "message", MESSAGE)
    assert "client-secret" not in caught.value.message


async def test_login_rate_limit_is_transient_with_retry_after(cache: Cache) -> None:
    async def login(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3"})

    client = GenesysClient(httpx.AsyncClient(transport=httpx.MockTransport(login)), cache)

    with pytest.raises(TransientError) as caught:
        await client.token(tenant())
    assert caught.value.retry_after == 3.0


async def test_another_platform_call_replaces_a_refused_token_once_and_hands_back_the_answer(
    fake: FakeGenesys, cache: Cache
) -> None:
    client = client_for(fake, cache)
    first = await client.request(tenant(), "GET", "/api/v2/integrations?pageSize=100")
    fake.expire_tokens()

    second = await client.request(tenant(), "POST", "/api/v2/conversations/messages/agentless", {"textBody": "Hi"})

    assert (first.status_code, second.status_code) == (200, 200)
    assert fake.tokens_issued == ["token-1", "token-2"]
    assert [(call.method, call.url.path, call.headers["authorization"]) for call in fake.calls] == [
        ("GET", "/api/v2/integrations", "Bearer token-1"),
        ("POST", "/api/v2/conversations/messages/agentless", "Bearer token-1"),
        ("POST", "/api/v2/conversations/messages/agentless", "Bearer token-2"),
    ]
    assert fake.calls[-1].content == b'{"textBody":"Hi"}'


async def test_another_platform_call_refused_twice_hands_back_the_401(fake: FakeGenesys, cache: Cache) -> None:
    client = client_for(fake, cache)
    fake.answers = [httpx.Response(401, json={"code": "bad.credentials"})] * 2
    fake.live_tokens.add("token-1")

    answer = await client.request(tenant(), "GET", "/api/v2/integrations")
    after = await client.request(tenant(), "GET", "/api/v2/integrations")

    assert (answer.status_code, after.status_code) == (401, 200)
    assert len(fake.calls) == 3
    assert fake.calls[-1].headers["authorization"] == f"Bearer {fake.tokens_issued[-1]}"
    assert fake.tokens_issued[-1] != fake.calls[1].headers["authorization"].removeprefix("Bearer ")
