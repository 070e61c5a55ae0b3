"""The API does what its OpenAPI document says: schemathesis, every default check, on every operation, as a
Xypr administrator and as a tenant's admin, against a running bridge (all services, the sandbox's emulators).

Each run is bounded (a few examples per operation, one worker, a fixed seed so a failure reproduces) and
must report no failure. `POST /auth/logout` is left out of these runs: it ends the very session the run
authenticates with, so every later call would be a 401 (its behaviour is covered in tests/e2e/test_auth.py).
The agent widget's operations are fuzzed like the rest: their rules are the document's (reply buttons
and lists are two shapes of one body told apart by `kind`, each with its own limits; a template is
`name|language` with values by placeholder, 404 when the account has no such template and 409 when it is
not approved; uploads name WhatsApp's media types, 413/415 beyond them). The live event stream has no end
of its own (it ends when the client closes it): schemathesis reads a stream up to 20 events or its request
timeout (60 s), then closes it, and checks each event against the document's schema for one event (its
name and its JSON data); tests/e2e/test_agent_widget_api.py follows a stream through changes.
The webhooks are fuzzed like the rest: their bodies and their signature header are declared, and an
unsigned or wrongly signed body must be refused (401/403), which the checks accept as a correct answer.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import running_bridge
from xypr.auth.principal import Role

pytestmark = pytest.mark.schemathesis

MAX_EXAMPLES = 5
SEED = 1
# The whole run (two roles) takes about three minutes on two busy cores; the cap only stops a hung run.
RUN_SECONDS = 420


async def _schemathesis(url: str, authorization: str, report: Path) -> tuple[int, str]:
    """One `st run` against the bridge; (exit code, output)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("st")), "run", f"{url}/openapi.json",
        "--header", f"Authorization: {authorization}",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1", "--request-timeout", "60",
        "--exclude-path", "/auth/logout",
        "--report", "junit", "--report-junit-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=report.parent,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=RUN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(2 * RUN_SECONDS + 120)
@pytest.mark.parametrize("role", [Role.XYPR_ADMIN, Role.TENANT_ADMIN])
async def test_every_operation_answers_as_its_openapi_document_says(tmp_path: Path, role: Role) -> None:
    # A short onboarding poll: generated tenants name integrations the emulated Genesys never completes.
    # No rate limits: thousands of requests a minute from one address are the point here (429 is documented).
    settings = embedded_settings(
        tmp_path,
        onboarding_poll_timeout_seconds=2.0,
        access_token_ttl_seconds=3600,
        rate_limit_per_ip=0,
        rate_limit_per_tenant=0,
    )
    async with running_bridge(settings, workers=False) as bridge:
        headers = await login_as(bridge, role)
        code, output = await _schemathesis(bridge.url, headers["Authorization"], tmp_path / "junit.xml")

    tally = [line.strip() for line in output.splitlines() if "generated" in line or line.startswith("=")]
    print(f"schemathesis as {role.value}:", *tally[-2:])  # shown with -s
    summary = re.search(r"(\d+) unique failures?", output)
    assert code == 0, f"schemathesis as {role.value}: {summary.group(0) if summary else 'failed'}\n{output}"
    assert "No issues found" in output or " passed" in output, output
