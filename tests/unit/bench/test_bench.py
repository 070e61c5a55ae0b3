"""The benchmark's own arithmetic and tools: the counts, the load generator's bodies and pacing, the emulator layers."""

from __future__ import annotations

import orjson
from bench.emulators import is_upstream_api
from bench.load import LoadSpec, LoadTenant, build_plan
from bench.stats import Arrival, LoadRecords, end_to_end, percentiles

from xypr.genesys import signature as genesys_signature
from xypr.whatsapp import signature as meta_signature

TENANT = LoadTenant(
    waba_id="419561257915477",
    phone_number_id="106540352242922",
    display_phone_number="15550783881",
    app_secret="bench-app-secret",
    integration_id="73cb7fb7-c2db-4996-88f3-0a83a4fea1da",
    webhook_secret="bench-webhook-secret-0123456789",
)


def _records(senders: list[int], seqs: list[int], statuses: list[int] | None = None) -> LoadRecords:
    count = len(senders)
    return LoadRecords(
        key=[f"k{i}" for i in range(count)],
        sender=senders,
        seq=seqs,
        due=[None] * count,
        sent=[100.0 + i for i in range(count)],
        latency=[0.01] * count,
        status=statuses or [200] * count,
    )


def _spec(**fields: object) -> LoadSpec:
    values: dict[str, object] = {"targets": ["http://127.0.0.1:9"], "run_id": "r1", "tenant": TENANT, "out": "-"}
    return LoadSpec.model_validate({**values, **fields})


def _split(raw: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")[1:]
    return {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}, body


def test_a_message_arriving_after_a_later_one_of_its_sender_is_out_of_order() -> None:
    records = _records(senders=[1, 1, 1, 2], seqs=[0, 1, 2, 0])
    arrivals = [Arrival(0, 101.0, "k0", "a"), Arrival(1, 102.0, "k2", "a"), Arrival(2, 103.0, "k1", "a"),
                Arrival(3, 104.0, "k3", "b")]  # fmt: skip

    counts = end_to_end(records, arrivals)

    assert (counts["arrived"], counts["out_of_order"], counts["duplicated"], counts["lost"]) == (4, 1, 0, 0)


def test_a_second_arrival_is_a_duplicate_and_an_arrival_without_200_is_unexpected() -> None:
    records = _records(senders=[1, 2], seqs=[0, 0], statuses=[200, 0])
    arrivals = [Arrival(0, 101.0, "k0", "a"), Arrival(1, 101.5, "k0", "a"), Arrival(2, 102.0, "k1", "b")]

    counts = end_to_end(records, arrivals)

    assert (counts["arrived"], counts["duplicated"], counts["unexpected"]) == (1, 1, 1)


def test_missing_messages_are_lost_once_arrivals_stopped_and_pending_when_the_wait_was_cut_off() -> None:
    records = _records(senders=[1, 2, 3], seqs=[0, 0, 0])
    arrivals = [Arrival(0, 101.0, "k0", "a")]

    stopped, cut_off = end_to_end(records, arrivals), end_to_end(records, arrivals, cut_off=True)

    assert (stopped["lost"], stopped["pending"]) == (2, 0)
    assert (cut_off["lost"], cut_off["pending"]) == (0, 2)


def test_end_to_end_latency_is_first_arrival_minus_send_time_in_milliseconds() -> None:
    records = _records(senders=[1, 2], seqs=[0, 0])
    arrivals = [Arrival(0, 100.05, "k0", "a"), Arrival(1, 101.25, "k1", "b"), Arrival(2, 109.0, "k1", "b")]

    assert end_to_end(records, arrivals)["e2e_ms"] == percentiles([0.05, 0.25])


def test_meta_webhooks_are_signed_in_hex_and_genesys_webhooks_in_base64_as_the_bridge_verifies() -> None:
    meta = build_plan(_spec(kind="whatsapp", count=2))
    genesys = build_plan(_spec(kind="genesys", count=2))

    for item in meta:
        headers, body = _split(item.raw)
        assert meta_signature.verify(TENANT.app_secret, body, headers["x-hub-signature-256"])
        assert int(headers["content-length"]) == len(body)
        assert orjson.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"] == item.key
    for item in genesys:
        headers, body = _split(item.raw)
        assert genesys_signature.verify(TENANT.webhook_secret, body, headers["x-hub-signature-256"])
        assert orjson.loads(body)["text"] == item.key


def test_a_media_mix_gives_every_tenth_message_its_own_media_id() -> None:
    media = [{"id": str(1000 + i), "mime_type": "image/jpeg", "sha256": "x"} for i in range(3)]
    plan = build_plan(_spec(kind="whatsapp", count=30, media_ratio=0.1, media=media))

    images = [
        orjson.loads(_split(item.raw)[1])["entry"][0]["changes"][0]["value"]["messages"][0].get("image")
        for item in plan
    ]

    assert [image["id"] for image in images if image] == ["1000", "1001", "1002"]


def test_bursts_give_each_sender_consecutive_messages_numbered_in_order() -> None:
    plan = build_plan(_spec(kind="whatsapp", count=8, pattern="bursts", senders=2, burst=2, sender_offset=5))

    assert [(item.sender, item.seq) for item in plan] == [
        (5, 0),
        (5, 1),
        (6, 0),
        (6, 1),
        (5, 2),
        (5, 3),
        (6, 2),
        (6, 3),
    ]


def test_upstream_latency_applies_to_the_graph_and_genesys_apis_never_to_control_routes() -> None:
    assert is_upstream_api("/meta/v23.0/106540352242922/messages")
    assert is_upstream_api("/genesys/api/v2/conversations/messages/x/inbound/open/message")
    assert is_upstream_api("/genesys/oauth/token")
    assert not is_upstream_api("/meta/_sandbox/sent")
    assert not is_upstream_api("/genesys/_sandbox/received")
    assert not is_upstream_api("/_bench/arrivals")
