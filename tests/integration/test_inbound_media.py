"""Customer media is copied from the (emulated) Graph API into the object store once, checked, and retried."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import select

from tests.conftest import embedded_settings
from tests.support.bridge import tenant_spec
from xypr.backends.db import Database, create_database, migrate
from xypr.backends.db.base import Base
from xypr.backends.storage.local import LocalObjectStore, create_media_router
from xypr.core.retry import RetryPolicy
from xypr.core.secretbox import SecretBox
from xypr.sandbox.meta import create_meta_app
from xypr.services.inbound_transformer.media import DOWNLOAD_ATTEMPTS, MediaCopier, media_object_key
from xypr.state.models import Media
from xypr.tenants.service import TenantDirectory, TenantRuntime, create_tenant, parse_tenant_file
from xypr.whatsapp.media import MediaUnavailable, sha256_matches
from xypr.whatsapp.models import WaMedia

META = "http://meta.test"
PUBLIC = "http://xypr.test"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


@dataclass
class Graph(httpx.AsyncBaseTransport):
    """The emulator behind a transport that records requests and misbehaves on demand."""

    inner: httpx.AsyncBaseTransport
    requests: list[httpx.URL] = field(default_factory=list)
    failing_downloads: int = 0
    corrupt_downloads: bool = False
    hide_length: bool = False
    info_patch: dict[str, Any] = field(default_factory=dict)

    def downloads(self) -> int:
        return sum(1 for url in self.requests if url.path.startswith("/_media/"))

    def lookups(self) -> int:
        return sum(1 for url in self.requests if url.path.startswith("/v23.0/"))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url)
        if request.url.host != "meta.test":
            return httpx.Response(200, content=b"not meta")
        if request.url.path.startswith("/_media/") and self.failing_downloads:
            self.failing_downloads -= 1
            return httpx.Response(500, content=b"flaky")
        response = await self.inner.handle_async_request(request)
        if request.url.path.startswith("/_media/") and self.corrupt_downloads:
            content = await response.aread()
            return httpx.Response(200, headers={"content-type": "image/jpeg"}, content=content[::-1])
        if request.url.path.startswith("/_media/") and self.hide_length:
            content = await response.aread()

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(content), 65536):
                    yield content[start : start + 65536]

            return httpx.Response(200, headers={"content-type": "image/webp"}, content=chunks())
        if request.url.path.startswith("/v23.0/") and self.info_patch and response.status_code == 200:
            info = json.loads(await response.aread())
            return httpx.Response(200, json={**info, **self.info_patch})
        return response


@dataclass
class World:
    """A migrated database with one tenant, the Meta emulator, a local store, and the copier under test."""

    database: Database
    tenant: TenantRuntime
    meta: httpx.AsyncClient
    graph: Graph
    store: LocalObjectStore
    copier: MediaCopier

    async def customer_media(self, content: bytes, mime_type: str = "image/jpeg", **extra: Any) -> WaMedia:
        created = await self.meta.post(
            "/_sandbox/media",
            json={"phone_number_id": self.tenant.wa_phone_number_id,
                  "data_base64": base64.b64encode(content).decode(), "mime_type": mime_type},
        )  # fmt: skip
        assert created.status_code == 200, created.text
        answer = created.json()
        return WaMedia(id=answer["id"], mime_type=answer["mime_type"], sha256=answer["sha256"], **extra)

    async def rows(self) -> list[Media]:
        async with self.database.session() as session:
            return list((await session.scalars(select(Media))).all())


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = embedded_settings(tmp_path)
    database = create_database(settings.effective_database_url)
    await migrate(database)
    box = SecretBox(settings.master_key.get_secret_value())
    spec = tenant_spec()
    created = await create_tenant(database, box, parse_tenant_file(spec))
    tenant = await TenantDirectory(database, box).by_id(created.id)
    assert tenant is not None
    meta_app = create_meta_app(base_url=META)
    graph = Graph(httpx.ASGITransport(app=meta_app))
    store = LocalObjectStore(tmp_path / "media", public_url=PUBLIC, signing_key=b"0123456789abcdef0123")
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=meta_app), base_url=META) as meta,
        httpx.AsyncClient(transport=graph) as http,
    ):
        answer = await meta.post(
            "/_sandbox/numbers",
            json={"phone_number_id": tenant.wa_phone_number_id, "display_phone_number": "+1 555 0199",
                  "waba_id": tenant.wa_waba_id, "access_token": tenant.wa_access_token,
                  "app_secret": "app-secret", "webhook_url": f"{PUBLIC}/webhook/whatsapp"},
        )  # fmt: skip
        answer.raise_for_status()
        copier = MediaCopier(
            http=http,
            database=database,
            store=store,
            graph_url=META,
            api_version="v23.0",
            url_ttl_seconds=3600,
            policy=RetryPolicy(max_attempts=DOWNLOAD_ATTEMPTS, base=0.01, cap=0.02),
        )
        yield World(database, tenant, meta, graph, store, copier)
        await meta_app.state.sandbox.aclose()
    await database.close()


async def _fetch_like_genesys(store: LocalObjectStore, url: str) -> httpx.Response:
    app = FastAPI()
    app.include_router(create_media_router(store))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as plain:
        return await plain.get(url)


async def test_an_image_is_copied_into_the_tenants_folder_and_served_byte_for_byte(world: World) -> None:
    content = os.urandom(50_000)
    media = await world.customer_media(content, caption="Taj Mahal")

    stored = await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    key = f"tenant/{world.tenant.id}/media/wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA.jpg"
    assert (await world.store.get(key)).data == content
    assert (stored.mime_type, stored.filename, stored.sha256) == (
        "image/jpeg",
        "image.jpg",
        hashlib.sha256(content).hexdigest(),
    )
    assert stored.url.startswith(f"{PUBLIC}/media/{key}?expires=")
    fetched = await _fetch_like_genesys(world.store, stored.url)
    assert (fetched.status_code, fetched.content) == (200, content)
    (row,) = await world.rows()
    assert (row.tenant_id, row.wamid, row.media_id, row.object_key, row.size) == (
        world.tenant.id,
        WAMID,
        media.id,
        key,
        len(content),
    )


async def test_a_redelivered_message_reuses_the_stored_copy_without_downloading_again(world: World) -> None:
    media = await world.customer_media(os.urandom(2000))
    first = await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)
    calls = len(world.graph.requests)

    again = await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert len(world.graph.requests) == calls
    assert again.sha256 == first.sha256
    assert len(await world.rows()) == 1


async def test_a_copy_lost_from_the_store_is_downloaded_again(world: World) -> None:
    content = os.urandom(2000)
    media = await world.customer_media(content)
    await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)
    (row,) = await world.rows()
    await world.store.delete(row.object_key)

    await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert world.graph.downloads() == 2
    assert (await world.store.get(row.object_key)).data == content
    assert len(await world.rows()) == 1


async def test_a_flaky_download_is_retried_until_it_succeeds(world: World) -> None:
    content = os.urandom(3000)
    media = await world.customer_media(content)
    world.graph.failing_downloads = DOWNLOAD_ATTEMPTS - 1

    stored = await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert world.graph.downloads() == DOWNLOAD_ATTEMPTS
    assert world.graph.lookups() == DOWNLOAD_ATTEMPTS  # each try asks for a fresh URL (they expire in 5 min)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()


async def test_a_download_that_stays_broken_gives_up_after_the_bounded_tries(world: World) -> None:
    media = await world.customer_media(os.urandom(3000))
    world.graph.failing_downloads = 100

    with pytest.raises(MediaUnavailable) as caught:
        await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert caught.value.retryable
    assert caught.value.agent_note is None
    assert world.graph.downloads() == DOWNLOAD_ATTEMPTS
    assert await world.rows() == []


async def test_bytes_that_do_not_match_metas_sha256_are_refused(world: World) -> None:
    media = await world.customer_media(os.urandom(3000))
    world.graph.corrupt_downloads = True

    with pytest.raises(MediaUnavailable, match="sha256"):
        await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert world.graph.downloads() == DOWNLOAD_ATTEMPTS
    assert not list((world.store.root / "objects").rglob("*.jpg"))


async def test_an_unknown_media_id_fails_at_once(world: World) -> None:
    media = WaMedia(id="1234567890123456", mime_type="image/jpeg")

    with pytest.raises(MediaUnavailable, match=r"\(100\)") as caught:
        await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert not caught.value.retryable
    assert world.graph.lookups() == 1


async def test_an_image_over_five_megabytes_is_refused_before_downloading(world: World) -> None:
    media = await world.customer_media(b"\xff" * (5 * 1024 * 1024 + 1))

    with pytest.raises(MediaUnavailable) as caught:
        await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert caught.value.agent_note == "5.0 MB is over the 5.0 MB limit for image messages"
    assert world.graph.downloads() == 0


async def test_a_body_larger_than_meta_announced_is_cut_off_at_the_limit(world: World) -> None:
    media = await world.customer_media(b"\x00" * (600 * 1024), mime_type="image/webp")
    world.graph.info_patch = {"file_size": "1000"}
    world.graph.hide_length = True

    with pytest.raises(MediaUnavailable) as caught:
        await world.copier.copy(world.tenant, wamid=WAMID, kind="sticker", media=media)

    assert caught.value.agent_note == "it is over the 500 KB limit for sticker messages"
    assert not caught.value.retryable
    assert world.graph.downloads() == 1


async def test_a_media_type_whatsapp_does_not_allow_for_images_is_refused(world: World) -> None:
    media = await world.customer_media(b"GIF89a....", mime_type="image/gif")

    with pytest.raises(MediaUnavailable) as caught:
        await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert caught.value.agent_note == "type image/gif is not accepted for image messages"


async def test_the_token_is_never_sent_to_a_media_url_outside_meta(world: World) -> None:
    media = await world.customer_media(os.urandom(100))
    world.graph.info_patch = {"url": "https://collector.example/steal"}

    with pytest.raises(MediaUnavailable, match="untrusted host"):
        await world.copier.copy(world.tenant, wamid=WAMID, kind="image", media=media)

    assert all(url.host == "meta.test" for url in world.graph.requests)


async def test_a_voice_note_and_a_document_keep_meaningful_filenames(world: World) -> None:
    voice = await world.customer_media(b"OggS" + os.urandom(500), mime_type="audio/ogg", voice=True)
    document = await world.customer_media(b"%PDF-1.7" + os.urandom(500), mime_type="application/pdf",
                                          filename="../invoice\n4411.pdf")  # fmt: skip

    stored_voice = await world.copier.copy(world.tenant, wamid="wamid.voice", kind="audio", media=voice)
    stored_document = await world.copier.copy(world.tenant, wamid="wamid.doc", kind="document", media=document)

    assert (stored_voice.filename, stored_voice.mime_type) == ("voice-message.ogg", "audio/ogg")
    assert (stored_document.filename, stored_document.mime_type) == (".._invoice_4411.pdf", "application/pdf")


@pytest.mark.parametrize(
    ("wamid", "mime", "key"),
    [
        ("wamid.HBg+ab/cd==", "audio/ogg; codecs=opus", "tenant/t1/media/wamid.HBg-ab_cd.ogg"),
        ("../../etc/passwd", "image/jpeg", "tenant/t1/media/_.._etc_passwd.jpg"),
        ("wamid.X", "application/x-unheard-of", "tenant/t1/media/wamid.X.bin"),
    ],
)
def test_object_keys_are_derived_from_the_wamid_and_stay_inside_the_tenants_folder(
    wamid: str, mime: str, key: str
) -> None:
    made = media_object_key("t1", wamid, mime)

    assert made == key
    assert made.count("/") == 3  # one name inside tenant/<id>/media/


def test_an_empty_or_dots_only_wamid_still_gets_a_safe_name() -> None:
    key = media_object_key("t1", "../..", "image/png")

    assert key.startswith("tenant/t1/media/")
    assert key.endswith(".png")
    assert ".." not in key


_DIGEST = hashlib.sha256(b"media bytes").digest()


@pytest.mark.parametrize(
    ("expected", "matches"),
    [
        (_DIGEST.hex(), True),
        (_DIGEST.hex().upper(), True),
        (base64.b64encode(_DIGEST).decode(), True),
        (base64.urlsafe_b64encode(_DIGEST).decode().rstrip("="), True),
        (hashlib.sha256(b"other").hexdigest(), False),
        (base64.b64encode(hashlib.sha256(b"other").digest()).decode(), False),
        ("not a hash!", False),
        ("", False),
    ],
    ids=["hex", "HEX", "base64", "base64url unpadded", "other hex", "other base64", "garbage", "empty"],
)
def test_metas_sha256_is_understood_in_hex_and_in_base64(expected: str, matches: bool) -> None:
    assert sha256_matches(_DIGEST, expected) is matches


async def test_the_media_table_matches_its_migration(world: World) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [diff for diff in compare_metadata(context, Base.metadata) if "media" in repr(diff)]

    async with world.database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
