"""How many deliveries of each queue a process handles at once."""

from __future__ import annotations

import pytest

from xypr.app import AppPlan, worker_concurrency
from xypr.config import Settings


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (AppPlan(worker_services=["inbound-transformer"]), 256),  # `xypr worker`: waits on upstream calls mostly
        (AppPlan(http_services=["api-gateway"], worker_services=["inbound-transformer"]), 64),  # `xypr run`
    ],
)
def test_unset_it_depends_on_whether_the_process_also_answers_http(
    monkeypatch: pytest.MonkeyPatch, plan: AppPlan, expected: int
) -> None:
    monkeypatch.delenv("XYPR_WORKER_CONCURRENCY", raising=False)
    assert worker_concurrency(Settings(_env_file=None), plan) == expected  # type: ignore[call-arg]


def test_a_setting_wins_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XYPR_WORKER_CONCURRENCY", "8")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert worker_concurrency(settings, AppPlan(worker_services=["genesys-api"])) == 8
    assert worker_concurrency(settings, AppPlan(http_services=["api-gateway"])) == 8
