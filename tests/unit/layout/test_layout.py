"""`xypr up`'s layout: every service of the registry on its port, the gateway routing to them, the workers."""

from __future__ import annotations

import json
from configparser import RawConfigParser
from dataclasses import replace
from pathlib import Path

import pytest
from supervisor.datatypes import dict_of_key_value_pairs

from xypr import layout
from xypr.layout import Program, plan_programs, supervisord_config
from xypr.services.registry import SERVICES

XYPR = ("/venv/bin/xypr",)
GUIDE_TABLE = {
    "api-gateway": 3000,
    "whatsapp-webhook": 3009,
    "genesys-webhook": 3011,
    "inbound-transformer": 3002,
    "outbound-transformer": 3003,
    "auth": 3004,
    "state-manager": 3005,
    "tenant": 3007,
}


def _by_name(programs: list[Program]) -> dict[str, Program]:
    return {program.name: program for program in programs}


def test_every_service_of_the_guide_table_is_a_process_on_its_port() -> None:
    programs = _by_name(plan_programs(xypr=XYPR, port_base=3000, workers=2, host="127.0.0.1"))

    for name, port in GUIDE_TABLE.items():
        assert programs[name].port == port, name
        assert programs[name].argv == (*XYPR, "serve", name, "--host", "127.0.0.1", "--port", str(port))


def test_the_port_base_moves_the_whole_table() -> None:
    programs = _by_name(plan_programs(xypr=XYPR, port_base=4100, workers=1, host="127.0.0.1"))

    assert {name: programs[name].port for name in GUIDE_TABLE} == {n: p + 1100 for n, p in GUIDE_TABLE.items()}
    assert programs["worker-0"].port == 4150


def test_workers_share_the_partitions_by_index() -> None:
    programs = plan_programs(xypr=XYPR, port_base=3000, workers=3, host="127.0.0.1")
    workers = [program for program in programs if program.name.startswith("worker-")]

    assert [program.argv[2:8] for program in workers] == [
        ("all", "--index", str(index), "--of", "3", "--host") for index in range(3)
    ]
    assert len({program.port for program in programs}) == len(programs)  # no two processes on one port


def test_the_gateway_proxies_every_service_with_paths_to_its_process() -> None:
    gateway = _by_name(plan_programs(xypr=XYPR, port_base=3000, workers=1, host="0.0.0.0"))["api-gateway"]

    routed = json.loads(gateway.env["XYPR_SERVICE_URLS"])
    expected = {name: f"http://127.0.0.1:{spec.port}" for name, spec in SERVICES.items() if spec.built and spec.paths}
    assert routed == expected
    assert {"auth", "tenant", "state-manager", "whatsapp-webhook", "genesys-webhook"} <= routed.keys()


def test_a_service_the_registry_gains_appears_in_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """When admin-dashboard or agent-widget is built, `xypr up` runs it on its port without other changes."""
    widened = {**SERVICES, "agent-widget": replace(SERVICES["agent-widget"], built=True, paths=("/widget",))}
    monkeypatch.setattr(layout, "SERVICES", widened)

    programs = _by_name(plan_programs(xypr=XYPR, port_base=3000, workers=1, host="127.0.0.1"))

    assert programs["agent-widget"].port == 3012
    assert json.loads(programs["api-gateway"].env["XYPR_SERVICE_URLS"])["agent-widget"] == "http://127.0.0.1:3012"


def test_pure_workers_have_no_serve_process() -> None:
    names = _by_name(plan_programs(xypr=XYPR, port_base=3000, workers=1, host="127.0.0.1"))
    assert "genesys-api" not in names
    assert "whatsapp-api" not in names


def test_supervisord_restarts_every_program_and_stops_its_whole_group(tmp_path: Path) -> None:
    programs = plan_programs(xypr=XYPR, port_base=3000, workers=2, host="127.0.0.1", s3_server=("moto",))
    parser = RawConfigParser()
    parser.read_string(supervisord_config(programs, run_dir=tmp_path))

    assert parser.get("supervisord", "nodaemon") == "true"
    sections = [section for section in parser.sections() if section.startswith("program:")]
    assert sorted(sections) == sorted(f"program:{program.name}" for program in programs)
    for section in sections:
        assert parser.get(section, "autorestart") == "true"
        assert parser.get(section, "stopasgroup") == "true"
        assert parser.get(section, "killasgroup") == "true"
    assert parser.getint("program:s3", "priority") < parser.getint("program:auth", "priority")


def test_the_gateways_json_survives_supervisords_environment_parser(tmp_path: Path) -> None:
    programs = plan_programs(xypr=XYPR, port_base=3000, workers=1, host="127.0.0.1")
    parser = RawConfigParser()
    parser.read_string(supervisord_config(programs, run_dir=tmp_path))

    parsed = dict_of_key_value_pairs(parser.get("program:api-gateway", "environment"))

    assert json.loads(parsed["XYPR_SERVICE_URLS"]) == json.loads(
        _by_name(programs)["api-gateway"].env["XYPR_SERVICE_URLS"]
    )


def test_no_secret_is_written_into_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XYPR_MASTER_KEY", "v1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM=")
    config = supervisord_config(plan_programs(xypr=XYPR, port_base=3000, workers=1, host="127.0.0.1"), run_dir=tmp_path)
    assert "c2VjcmV0" not in config
    assert "MASTER_KEY" not in config
