"""Who may call what: every endpoint of /tenants, /state and /auth/info, called by anonymous, the agent,
supervisor and tenant_admin of tenant A and of tenant B, and a Xypr admin. Tenant B never sees or
changes A's data, and no answer ever carries a secret. Then: no tenant secret is stored in clear text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, running_bridge, tenant_spec
from xypr.auth.principal import Role
from xypr.config import Settings
from xypr.sandbox.demo import register_with_emulators
from xypr.state.models import Conversation, Media, Message
from xypr.tenants.models import Tenant

CUSTOMER = "16505551234"
TENANT_ROLES = (Role.TENANT_ADMIN, Role.SUPERVISOR, Role.AGENT)
# Callers in the order they call each endpoint: a Xypr admin last, so its deletes and writes come after the denials.
CALLERS = ("anonymous", *(f"{r.value}@{t}" for t in "AB" for r in TENANT_ROLES), "xypr_admin")


def _secrets(spec: dict[str, Any]) -> list[str]:
    return [spec["genesys"][name] for name in ("client_secret", "webhook_secret")] + [
        spec["whatsapp"][name] for name in ("access_token", "app_secret", "verify_token")
    ]


@dataclass
class Matrix:
    """Calls one endpoint as every caller and checks each answer's status; keeps every body for the secret scan."""

    bridge: Bridge
    headers: dict[str, dict[str, str]]
    tenant_a: str
    answers: list[httpx.Response] = field(default_factory=list)

    async def call(self, caller: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request as `caller`; a Xypr admin acts on tenant A in /state unless told otherwise."""
        params = dict(kwargs.pop("params", {}) or {})
        if caller == "xypr_admin" and path.startswith("/state") and kwargs.pop("admin_names_a", True):
            params.setdefault("tenantId", self.tenant_a)
        answer = await self.bridge.client.request(method, path, headers=self.headers[caller], params=params, **kwargs)
        self.answers.append(answer)
        return answer

    async def expect(
        self, method: str, path: str, allowed: dict[str, int | tuple[int, ...]], *, denied: int = 403, **kwargs: Any
    ) -> dict[str, httpx.Response]:
        """Call as every caller: those in `allowed` get that status, anonymous 401, the others `denied`."""
        answers = {}
        for caller in CALLERS:
            wanted = allowed.get(caller, 401 if caller == "anonymous" else denied)
            answer = await self.call(caller, method, path, **kwargs)
            statuses = wanted if isinstance(wanted, tuple) else (wanted,)
            assert answer.status_code in statuses, f"{caller} {method} {path}: {answer.status_code} {answer.text}"
            answers[caller] = answer
        return answers


def _of(tenant: str, *roles: Role, status: int | tuple[int, ...] = 200) -> dict[str, int | tuple[int, ...]]:
    return {f"{role.value}@{tenant}": status for role in roles}


async def _tenant_a_data(bridge: Bridge, tenant_id: str) -> dict[str, str]:
    """A conversation of tenant A with a tracked message, a context and a media copy."""
    async with bridge.runtime.database.session() as session:
        conversation = Conversation(tenant_id=tenant_id, wa_id=CUSTOMER, genesys_conversation_id="gc-a",
                                    customer_name="Customer of A", context={"secret_plan": "A only"})  # fmt: skip
        session.add(conversation)
        await session.flush()
        session.add(Message(tenant_id=tenant_id, conversation_id=conversation.id, direction="inbound",
                            wamid="wamid.A", kind="text", status="sent", text="for A's eyes"))  # fmt: skip
        session.add(Media(tenant_id=tenant_id, wamid="wamid.A", media_id="media-a", object_key=f"tenant/{tenant_id}/m",
                          mime_type="image/jpeg", sha256="00" * 32, size=1))  # fmt: skip
        conversation_id = conversation.id
    await bridge.runtime.store.put(f"tenant/{tenant_id}/m", b"x", content_type="image/jpeg")
    return {"conversation": conversation_id}


async def test_every_endpoint_admits_exactly_the_callers_it_should(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        specs = {"A": tenant_spec("a"), "B": tenant_spec("b")}
        ids = {name: await bridge.add_tenant(spec) for name, spec in specs.items()}
        headers: dict[str, dict[str, str]] = {"anonymous": {}, "xypr_admin": await login_as(bridge, Role.XYPR_ADMIN)}
        for name, spec in specs.items():
            for role in TENANT_ROLES:
                headers[f"{role.value}@{name}"] = await login_as(bridge, role, spec)
        a, b = ids["A"], ids["B"]
        data = await _tenant_a_data(bridge, a)
        m = Matrix(bridge, headers, a)
        tenant_admins = {"tenant_admin@A": 200, "xypr_admin": 200}

        # --- /auth/info: everyone who is logged in, about themselves ---------------------------------
        info = await m.expect("GET", "/auth/info", {caller: 200 for caller in CALLERS[1:]})
        assert info["agent@B"].json()["tenant"]["id"] == b, info["agent@B"].text

        # --- /tenants ------------------------------------------------------------------------------
        await m.expect("GET", "/tenants", {"xypr_admin": 200})
        fresh = tenant_spec()
        await register_with_emulators(bridge.meta, bridge.genesys, fresh, public_url=bridge.url)
        created = await m.expect("POST", "/tenants", {"xypr_admin": 201}, json=fresh)
        throwaway = created["xypr_admin"].json()["id"]

        read = await m.expect("GET", f"/tenants/{a}", {**_of("A", *TENANT_ROLES), "xypr_admin": 200}, denied=404)
        assert "genesys" in read["tenant_admin@A"].json()
        assert set(read["agent@A"].json()) == set(read["supervisor@A"].json()) == {"id", "name", "status"}
        await m.expect(
            "PATCH", f"/tenants/{a}", {**tenant_admins, "tenant_admin@B": 404},
            json={"name": "A renamed", "whatsapp": {"app_secret": "b-tried-to-set-this"}},
        )  # fmt: skip
        await m.expect("POST", f"/tenants/{a}/checks", {**tenant_admins, "tenant_admin@B": 404})
        await m.expect("POST", f"/tenants/{throwaway}/suspend", {"xypr_admin": 200})
        await m.expect("POST", f"/tenants/{throwaway}/reactivate", {"xypr_admin": 200})
        await m.call("xypr_admin", "POST", f"/tenants/{throwaway}/suspend")
        await m.expect("DELETE", f"/tenants/{throwaway}", {"xypr_admin": 204})
        # B's admin cannot reach A even through its own-tenant powers:
        assert (await m.call("tenant_admin@B", "GET", f"/tenants/{a}")).status_code == 404
        assert (await m.call("tenant_admin@B", "POST", f"/tenants/{a}/suspend")).status_code == 403

        # --- /state: A's data is A's; B's callers act on B (where none of it exists) ----------------
        everyone_of_a = {**_of("A", *TENANT_ROLES), "xypr_admin": 200}
        conversation = data["conversation"]
        await m.expect("GET", f"/state/mapping/{CUSTOMER}", everyone_of_a, denied=404)
        await m.expect("GET", f"/state/conversation/{conversation}", everyone_of_a, denied=404)
        await m.expect("GET", "/state/conversation/gc-a", everyone_of_a, denied=404)
        context = await m.expect("GET", f"/state/context/{conversation}", everyone_of_a, denied=404)
        assert context["agent@A"].json()["context"]["secret_plan"] == "A only"
        await m.expect(
            "PUT", f"/state/context/{conversation}", everyone_of_a, denied=404, json={"context": {"note": "ok"}}
        )
        await m.expect("GET", "/state/media/media-a", everyone_of_a, denied=404)

        writers = {"tenant_admin@A": (200, 201), "tenant_admin@B": (200, 201), "xypr_admin": (200, 201)}
        await m.expect("POST", "/state/mapping", writers, json={"waId": "15550009999"})
        await m.expect(
            "POST", "/state/message", writers,
            json={"direction": "inbound", "waId": "15550009999", "wamid": "wamid.written"},
        )  # fmt: skip

        listers = {**_of("A", Role.TENANT_ADMIN, Role.SUPERVISOR), **_of("B", Role.TENANT_ADMIN, Role.SUPERVISOR)}
        listed = await m.expect("GET", "/state/messages", {**listers, "xypr_admin": 200})
        assert {item["wamid"] for item in listed["supervisor@B"].json()["items"]} == {"wamid.written"}
        one_conversation = {**listers, **_of("A", Role.AGENT), **_of("B", Role.AGENT), "xypr_admin": 200}
        by_conversation = await m.expect(
            "GET", "/state/messages", one_conversation, params={"conversationId": conversation}
        )
        assert [item["wamid"] for item in by_conversation["agent@A"].json()["items"]] == ["wamid.A"]
        for caller in ("agent@B", "supervisor@B", "tenant_admin@B"):
            assert by_conversation[caller].json()["total"] == 0, caller

        stats = await m.expect("GET", "/state/stats", {**listers, "xypr_admin": 200})
        assert stats["supervisor@A"].json()["conversations"] == 2
        assert stats["supervisor@B"].json()["conversations"] == 1  # only its own
        assert stats["supervisor@B"].json()["messages"] == {"inbound": {"received": 1}, "outbound": {}}

        # --- /widget: A's people see A's conversation; B's get "Conversation not found"; supervisors never send
        view = "/widget/api/conversations/gc-a"
        shown = await m.expect("GET", view, {**_of("A", *TENANT_ROLES), **_of("B", *TENANT_ROLES, status=404)})
        assert "for A&#39;s eyes" in shown["supervisor@A"].text  # (HTML-escaped)
        assert "eyes" not in shown["agent@B"].text
        senders = (Role.TENANT_ADMIN, Role.AGENT)
        await m.expect("GET", view + "/templates", {**_of("A", *senders), **_of("B", *senders, status=404)})
        await m.expect(  # the window never opened (no customer message time): refused, but past the checks
            "POST", view + "/reactions", {**_of("A", *senders, status=409), **_of("B", *senders, status=404)},
            json={"messageId": "x", "emoji": "👍"},
        )  # fmt: skip
        await m.expect("POST", f"/tenants/{a}/widget/install", {**tenant_admins, "tenant_admin@B": 404})

        # Naming another tenant explicitly is refused for everyone but a Xypr admin.
        for caller in CALLERS[4:7]:
            named = await m.call(caller, "GET", f"/state/mapping/{CUSTOMER}", params={"tenantId": a})
            assert named.status_code == 403, (caller, named.text)

        # --- nothing of A was changed by B; no answer carried a secret ------------------------------
        async with bridge.runtime.database.session() as session:
            tenant_a = await session.get(Tenant, a)
            assert tenant_a is not None
            assert bridge.runtime.box.open(tenant_a.wa_app_secret_sealed, tenant_id=a) == "b-tried-to-set-this"
        secrets = [*_secrets(specs["A"]), *_secrets(specs["B"]), *_secrets(fresh), "b-tried-to-set-this"]
        assert len(m.answers) > 150
        for answer in m.answers:
            for secret in secrets:
                assert secret not in answer.text, (answer.request.method, answer.request.url, secret)


async def _all_rows_as_text(bridge: Bridge) -> str:
    """Every column of every row of every table, as text (PostgreSQL), or the database files' bytes (SQLite)."""
    if bridge.runtime.database.is_sqlite:
        folder = Path(bridge.runtime.settings.effective_database_url.split(":///", 1)[1]).parent
        return "".join(path.read_bytes().decode("latin-1") for path in sorted(folder.glob("*.sqlite3*")))
    async with bridge.runtime.database.session() as session:
        tables = (await session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).all()
        dumped = []
        for (table,) in tables:
            rows = await session.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))  # noqa: S608
            dumped += [row[0] for row in rows.all()]
    return "\n".join(dumped)


async def test_no_tenant_secret_is_stored_in_clear_text(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings, workers=False) as bridge:
        admin = await login_as(bridge, Role.XYPR_ADMIN)
        spec = tenant_spec()
        await register_with_emulators(bridge.meta, bridge.genesys, spec, public_url=bridge.url)
        created = await bridge.client.post("/tenants", json=spec, headers=admin)
        assert created.status_code == 201, created.text
        patched = await bridge.client.patch(
            f"/tenants/{created.json()['id']}",
            json={"genesys": {"client_secret": "rotated-client-secret-7f3a"}},
            headers=admin,
        )
        assert patched.status_code == 200, patched.text

        stored = await _all_rows_as_text(bridge)

    assert spec["whatsapp"]["phone_number_id"] in stored  # the dump does hold the tenant's data
    for secret in [*_secrets(spec), "rotated-client-secret-7f3a", *_secrets(bridge.demo)]:
        assert secret not in stored, secret
