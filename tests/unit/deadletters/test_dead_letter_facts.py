"""What operators and the audit log get to see of a dead letter: credentials redacted, the message's ids kept."""

from __future__ import annotations

from xypr.deadletters.service import REDACTED, message_refs, redact


def test_every_credential_like_field_is_redacted_at_any_depth_and_the_rest_is_kept() -> None:
    payload = {
        "body": {"text": "hello", "channel": {"messageId": "wamid.1"}},
        "headers": [{"Authorization": "Bearer abc"}, {"X-Hub-Signature-256": "sha256=00"}],
        "access_token": "EAAG-secret",
        "tenant": {"app_secret": "s", "verify_token": "v", "client_secret": "c", "name": "Acme"},
    }
    shown = redact(payload)
    assert shown["body"] == payload["body"]
    assert shown["headers"] == [{"Authorization": REDACTED}, {"X-Hub-Signature-256": REDACTED}]
    assert shown["access_token"] == REDACTED
    assert shown["tenant"] == {"app_secret": REDACTED, "verify_token": REDACTED, "client_secret": REDACTED,
                               "name": "Acme"}  # fmt: skip
    assert "EAAG-secret" not in str(shown)


def test_the_message_ids_of_an_inbound_and_an_outbound_event_are_found_once_each() -> None:
    inbound = {"message_id": "m-1", "body": {"channel": {"messageId": "wamid.A"}, "text": "hi"}}
    outbound = {"message_id": "m-2", "wamid": "wamid.B", "body": {"id": "genesys-9"}}
    assert message_refs(inbound) == ["m-1", "wamid.A"]
    assert message_refs(outbound) == ["m-2", "wamid.B", "genesys-9"]
    assert message_refs({"message_id": "m-3", "wamid": "m-3"}) == ["m-3"]
    assert message_refs("not an event") == []
    assert message_refs({"body": "text", "message_id": 7}) == []
