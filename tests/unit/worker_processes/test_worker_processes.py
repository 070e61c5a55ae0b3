"""How many worker processes `xypr run` starts: the cores it may use, a container's CPU quota included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import embedded_settings
from xypr.worker_processes import default_worker_processes, usable_cpus

CORES = float(len(os.sched_getaffinity(0)))


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "100000 100000\n"}, 1.0),  # cgroup v2, one core
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, CORES),  # no quota
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, CORES),
        ({"cpu.max": "garbage\n"}, CORES),
        ({"cpu.max": "100000 0\n"}, CORES),
        ({}, CORES),  # no cgroup files at all (not Linux, or not mounted)
    ],
)
def test_usable_cpus_is_capped_by_a_container_quota(tmp_path: Path, files: dict[str, str], expected: float) -> None:
    assert usable_cpus(_cgroup(tmp_path, files)) == min(CORES, expected)


def test_a_quota_above_the_cores_changes_nothing(tmp_path: Path) -> None:
    assert usable_cpus(_cgroup(tmp_path, {"cpu.max": f"{int(CORES * 4 * 100000)} 100000"})) == CORES


def test_one_worker_process_needs_two_usable_cores(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    assert [default_worker_processes(settings, cpus) for cpus in (1.0, 1.5, 2.0, 8.0)] == [0, 0, 1, 1]
    assert default_worker_processes(settings.model_copy(update={"run_worker_processes": 3}), 1.0) == 3
