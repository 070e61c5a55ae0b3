"""The object store contract, run against S3 (moto, or `XYPR_TEST_S3_ENDPOINT`) and the local folder."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import botocore.session
import httpx
import pytest
from fastapi import FastAPI

from tests.support.moto import free_port, start_moto_server, stop_moto_server
from xypr.backends.storage import create_object_store
from xypr.backends.storage.base import ObjectNotFound, ObjectStore
from xypr.backends.storage.local import LocalObjectStore, create_media_router
from xypr.backends.storage.s3 import S3ObjectStore
from xypr.config import Settings

PUBLIC_URL = "http://xypr.test"
S3_CREDENTIALS = {"region": "us-east-1", "access_key": "testing", "secret_key": "testing"}

Fetch = Callable[[str], Awaitable[httpx.Response]]


def _is_moto(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/moto-api/data.json", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """`XYPR_TEST_S3_ENDPOINT` when set, else a moto server started for this test session."""
    if endpoint := os.environ.get("XYPR_TEST_S3_ENDPOINT"):
        yield endpoint.rstrip("/")
        return
    port = free_port()
    process = start_moto_server(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_moto_server(process)


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A bucket of this test run, emptied and removed at the end (the store creates it)."""
    bucket = f"xypr-test-{uuid.uuid4().hex[:8]}"
    yield bucket
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_CREDENTIALS["region"],
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
    )
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass
    finally:
        client.close()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.services)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    backend: ObjectStore
    if request.param == "s3":
        backend = S3ObjectStore(
            endpoint=request.getfixturevalue("s3_endpoint"),
            bucket=request.getfixturevalue("s3_bucket"),
            **S3_CREDENTIALS,
        )
    else:
        backend = LocalObjectStore(tmp_path / "media", public_url=PUBLIC_URL, signing_key=os.urandom(32))
    yield backend
    await backend.close()


@pytest.fixture
async def fetch(store: ObjectStore) -> AsyncIterator[Fetch]:
    """GETs a URL the way Genesys would; local URLs are routed into the media router in-process."""
    transport: httpx.AsyncBaseTransport | None = None
    if isinstance(store, LocalObjectStore):
        app = FastAPI()
        app.include_router(create_media_router(store))
        transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as client:
        yield client.get


@pytest.fixture
def prefix() -> str:
    """Keys under a fresh tenant, so tests sharing the run's bucket never meet."""
    return f"tenant/{uuid.uuid4().hex}"


@pytest.fixture
def verified_urls(store: ObjectStore, request: pytest.FixtureRequest) -> None:
    """Skips where the endpoint does not check URL signatures (moto accepts any presigned URL)."""
    if isinstance(store, S3ObjectStore) and _is_moto(request.getfixturevalue("s3_endpoint")):
        pytest.skip("moto does not verify presigned URL signatures or expiry")


def _tamper(url: str) -> str:
    parsed = httpx.URL(url)
    name = "signature" if "signature" in parsed.params else "X-Amz-Signature"
    signature = parsed.params[name]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    return str(parsed.copy_set_param(name, flipped))


async def test_put_then_get_returns_bytes_and_content_type(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/media/photo.jpg"
    await store.put(key, b"\xff\xd8jpeg bytes", content_type="image/jpeg")
    stored = await store.get(key)
    assert stored.data == b"\xff\xd8jpeg bytes"
    assert stored.content_type == "image/jpeg"


async def test_put_overwrites_bytes_and_content_type(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/doc"
    await store.put(key, b"v1", content_type="text/plain")
    await store.put(key, b"%PDF v2", content_type="application/pdf")
    stored = await store.get(key)
    assert (stored.data, stored.content_type) == (b"%PDF v2", "application/pdf")


async def test_empty_object_round_trips(store: ObjectStore, prefix: str) -> None:
    await store.put(f"{prefix}/empty", b"", content_type="application/octet-stream")
    assert (await store.get(f"{prefix}/empty")).data == b""


async def test_exists_and_delete(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}/voice.ogg"
    assert await store.exists(key) is False
    await store.put(key, b"OggS", content_type="audio/ogg")
    assert await store.exists(key) is True
    await store.delete(key)
    assert await store.exists(key) is False
    await store.delete(key)  # deleting again is fine


async def test_get_of_a_missing_key_raises_object_not_found(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get(f"{prefix}/missing")


async def test_concurrent_puts_of_distinct_keys_all_land(store: ObjectStore, prefix: str) -> None:
    keys = [f"{prefix}/many/{i}" for i in range(20)]
    await asyncio.gather(*(store.put(key, key.encode(), content_type="text/plain") for key in keys))
    stored = await asyncio.gather(*(store.get(key) for key in keys))
    assert [item.data for item in stored] == [key.encode() for key in keys]


async def test_url_fetches_the_object_without_credentials(store: ObjectStore, fetch: Fetch, prefix: str) -> None:
    key = f"{prefix}/media/a file name.png"
    await store.put(key, b"\x89PNG image", content_type="image/png")
    response = await fetch(await store.url(key, expires_in=300))
    assert response.status_code == 200
    assert response.content == b"\x89PNG image"
    assert response.headers["content-type"] == "image/png"


async def test_url_of_a_deleted_object_answers_404(store: ObjectStore, fetch: Fetch, prefix: str) -> None:
    key = f"{prefix}/gone"
    await store.put(key, b"x", content_type="text/plain")
    url = await store.url(key, expires_in=300)
    await store.delete(key)
    assert (await fetch(url)).status_code == 404


@pytest.mark.usefixtures("verified_urls")
async def test_tampered_signature_is_forbidden(store: ObjectStore, fetch: Fetch, prefix: str) -> None:
    key = f"{prefix}/secret.pdf"
    await store.put(key, b"%PDF", content_type="application/pdf")
    response = await fetch(_tamper(await store.url(key, expires_in=300)))
    assert response.status_code == 403


@pytest.mark.usefixtures("verified_urls")
async def test_expired_url_is_forbidden(store: ObjectStore, fetch: Fetch, prefix: str) -> None:
    key = f"{prefix}/old.pdf"
    await store.put(key, b"%PDF", content_type="application/pdf")
    url = await store.url(key, expires_in=1)
    await asyncio.sleep(2.1)
    assert (await fetch(url)).status_code == 403


async def test_non_positive_expiry_is_rejected(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        await store.url(f"{prefix}/x", expires_in=0)


async def test_ping_is_true_when_reachable(store: ObjectStore) -> None:
    assert await store.ping() is True


# --- local folder only --------------------------------------------------------------------------


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "media", public_url=PUBLIC_URL + "/", signing_key=b"k" * 32)


@pytest.fixture
async def local_client(local_store: LocalObjectStore) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(create_media_router(local_store))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as client:
        yield client


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "a\\..\\b",
        "a\x00b",
        "",
        "a//b",
        "./a",
        "a/",
        "a/.",
        "a\nb",
    ],
)
async def test_local_rejects_keys_that_could_leave_the_root(local_store: LocalObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        await local_store.put(key, b"x", content_type="text/plain")
    for call in (local_store.get, local_store.exists, local_store.delete):
        with pytest.raises(ValueError, match="invalid object key"):
            await call(key)
    with pytest.raises(ValueError, match="invalid object key"):
        await local_store.url(key, expires_in=60)


async def test_local_rejects_a_key_through_a_symlink_out_of_the_root(
    local_store: LocalObjectStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_store.root / "objects" / "tenant").mkdir()
    (local_store.root / "objects" / "tenant" / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="invalid object key"):
        await local_store.put("tenant/link/file", b"x", content_type="text/plain")
    assert not any(outside.iterdir())


async def test_local_key_named_like_metadata_does_not_clobber_another(local_store: LocalObjectStore) -> None:
    await local_store.put("t/a", b"A", content_type="image/png")
    await local_store.put("t/a.json", b"{}", content_type="application/json")
    assert (await local_store.get("t/a")).content_type == "image/png"
    assert (await local_store.get("t/a.json")).data == b"{}"


async def test_local_writes_leave_no_temporary_files(local_store: LocalObjectStore) -> None:
    await local_store.put("t/x", b"x" * 10_000, content_type="text/plain")
    assert list((local_store.root / "tmp").iterdir()) == []


async def test_local_url_has_the_documented_shape(local_store: LocalObjectStore) -> None:
    url = httpx.URL(await local_store.url("tenant/t1/pic.jpg", expires_in=60))
    assert str(url).startswith(f"{PUBLIC_URL}/media/tenant/t1/pic.jpg?")
    expires, signature = int(url.params["expires"]), url.params["signature"]
    assert len(signature) == 64
    assert local_store.verify_signature("tenant/t1/pic.jpg", expires, signature)
    assert not local_store.verify_signature("tenant/t2/pic.jpg", expires, signature)
    assert not local_store.verify_signature("tenant/t1/pic.jpg", expires + 1, signature)
    assert not local_store.verify_signature("tenant/t1/pic.jpg", expires, "é" * 64)


async def test_local_media_response_is_private_and_not_sniffed(
    local_store: LocalObjectStore, local_client: httpx.AsyncClient
) -> None:
    await local_store.put("t/page.html", b"<script>alert(1)</script>", content_type="text/html")
    url = httpx.URL(await local_store.url("t/page.html", expires_in=120))
    response = await local_client.get(url.raw_path.decode())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"].startswith("private, max-age=")
    assert 0 < int(response.headers["cache-control"].rsplit("=", 1)[1]) <= 120
    assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?expires=9999999999",
        "?signature=abc",
        "?expires=soon&signature=abc",
        "?expires=9999999999&signature=zz",
    ],
)
async def test_local_media_without_a_valid_signature_is_a_403_json_error(
    local_store: LocalObjectStore, local_client: httpx.AsyncClient, query: str
) -> None:
    await local_store.put("t/x", b"x", content_type="text/plain")
    response = await local_client.get(f"/media/t/x{query}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert response.json()["error"]["message"]


async def test_local_signature_of_one_key_does_not_open_another(
    local_store: LocalObjectStore, local_client: httpx.AsyncClient
) -> None:
    await local_store.put("tenant/a/x", b"a", content_type="text/plain")
    await local_store.put("tenant/b/x", b"b", content_type="text/plain")
    url = httpx.URL(await local_store.url("tenant/a/x", expires_in=60))
    response = await local_client.get("/media/tenant/b/x", params=dict(url.params))
    assert response.status_code == 403


async def test_local_missing_object_is_a_404_json_error(
    local_store: LocalObjectStore, local_client: httpx.AsyncClient
) -> None:
    url = httpx.URL(await local_store.url("t/never", expires_in=60))
    response = await local_client.get(url.raw_path.decode())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- factory ------------------------------------------------------------------------------------


def _master_key() -> str:
    return "v1:" + base64.b64encode(b"m" * 32).decode()


def test_create_object_store_is_local_with_a_master_key(tmp_path: Path) -> None:
    store = create_object_store(Settings(s3_endpoint="", data_dir=tmp_path, master_key=_master_key()))
    assert isinstance(store, LocalObjectStore)
    assert store.root == (tmp_path / "media").resolve()


def test_create_object_store_without_a_master_key_explains_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="XYPR_MASTER_KEY"):
        create_object_store(Settings(s3_endpoint="", data_dir=tmp_path, master_key=""))


def test_create_object_store_is_s3_when_an_endpoint_is_set() -> None:
    store = create_object_store(Settings(s3_endpoint="http://127.0.0.1:9000", s3_bucket="b"))
    assert isinstance(store, S3ObjectStore)
    assert store.bucket == "b"
