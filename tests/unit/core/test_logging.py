"""Logs: one JSON object per line, from structlog and the standard library alike, also across threads."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from xypr.core.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _quiet_again() -> object:
    yield None
    configure_logging("WARNING", "json")


def test_a_driver_logging_from_its_thread_never_cuts_into_a_line(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "json")
    ours, theirs = get_logger("xypr.test"), logging.getLogger("some.driver")

    def driver() -> None:
        for n in range(300):
            theirs.warning("driver line %d with a long enough text to be written in more than one piece", n)

    thread = threading.Thread(target=driver)
    thread.start()
    for n in range(300):
        ours.info("loop line", n=n, access_token="do-not-print")
    thread.join()

    lines = capfd.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # each line is exactly one JSON object
    assert len(records) == 600
    assert {record["logger"] for record in records if "logger" in record} == {"some.driver"}
    assert all(record["access_token"] == "[redacted]" for record in records if record["event"] == "loop line")


def test_a_library_exception_is_json_with_its_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("lib").exception("it failed")
    (record,) = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert (record["event"], record["level"], record["logger"]) == ("it failed", "error", "lib")
    assert "ValueError: boom" in record["exception"]


def test_aiosqlite_statements_are_not_logged_even_at_debug(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "json")
    logging.getLogger("aiosqlite").debug("executing BEGIN IMMEDIATE")
    assert capfd.readouterr().err == ""
