"""`/health`, `/ready` and `/metrics`, mounted on every HTTP service."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from xypr.core.apimodel import ApiModel
from xypr.core.metrics import PARKED_EVENTS, QUEUE_DEPTH
from xypr.retry_parking import ParkingStore
from xypr.services.deps import RuntimeDep
from xypr.topology import QUEUES

__all__ = ["router"]

router = APIRouter(tags=["operations"])

_COMPANION_TIMEOUT_SECONDS = 3.0


class Health(ApiModel):
    """The process is up."""

    status: Literal["ok"]


class Readiness(ApiModel):
    """Whether every backend answers, backend by backend (and `workers`: the worker processes of `xypr run`)."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, bool]


@router.get("/health", summary="Liveness", response_model=Health)
async def health() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get(
    "/ready",
    summary="Readiness: every backend reachable",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A backend does not answer (named in `checks`)"}},
)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 when database, broker, cache and object store all answer (and, in `xypr run`, its worker processes
    are ready), else 503 naming the failing ones."""
    names = ["database", "broker", "cache", "storage"]
    probes = [runtime.database.ping(), runtime.broker.ping(), runtime.cache.ping(), runtime.store.ping()]
    if runtime.companions:
        names.append("workers")
        probes.append(_companions_ready(runtime.companions))
    checks = await asyncio.gather(*probes, return_exceptions=True)
    status = {name: ok is True for name, ok in zip(names, checks, strict=True)}
    ok = all(status.values())
    return JSONResponse({"status": "ready" if ok else "unavailable", "checks": status}, status_code=200 if ok else 503)


async def _companions_ready(urls: list[str]) -> bool:
    # A client of its own: the processes are on 127.0.0.1, never behind the HTTP(S)_PROXY of the environment.
    async with httpx.AsyncClient(timeout=_COMPANION_TIMEOUT_SECONDS, trust_env=False) as http:

        async def one(url: str) -> bool:
            try:
                return (await http.get(f"{url}/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        return all(await asyncio.gather(*(one(url) for url in list(urls))))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format; queue depths and parked counts are read at scrape time."""
    for queue in QUEUES:
        try:
            QUEUE_DEPTH.labels(queue).set(await runtime.broker.depth(queue))
        except Exception:  # a scrape must not fail because the broker is away
            QUEUE_DEPTH.labels(queue).set(float("nan"))
    try:
        parked = await ParkingStore(runtime.database).counts()
    except Exception:  # nor because the database is
        parked = None
    for queue in QUEUES:
        PARKED_EVENTS.labels(queue).set(float("nan") if parked is None else parked.get(queue, 0))
    own = generate_latest()
    if not runtime.companions:
        return Response(own, media_type=CONTENT_TYPE_LATEST)
    # `xypr run` with worker processes: one scrape answers for all of them, each sample labelled with its process.
    texts = [("http", own.decode())]
    up: dict[str, bool] = {}
    for index, text in enumerate(await _companion_metrics(runtime.companions), start=1):
        up[f"worker-{index}"] = text is not None
        if text is not None:
            texts.append((f"worker-{index}", text))
    return Response(_merged(texts, up), media_type=CONTENT_TYPE_LATEST)


# Read by the process that answers the scrape for the whole deployment: a worker's copy would repeat them.
_SCRAPE_TIME_FAMILIES = frozenset({"xypr_queue_depth", "xypr_parked_events"})


async def _companion_metrics(urls: list[str]) -> list[str | None]:
    """Each worker process's own metrics (Prometheus text), None for one that did not answer."""
    async with httpx.AsyncClient(timeout=_COMPANION_TIMEOUT_SECONDS, trust_env=False) as http:

        async def one(url: str) -> str | None:
            try:
                answer = await http.get(f"{url}/metrics")
            except httpx.HTTPError:
                return None
            return answer.text if answer.status_code == 200 else None

        return list(await asyncio.gather(*(one(url) for url in list(urls))))


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _merged(texts: list[tuple[str, str]], up: dict[str, bool]) -> bytes:
    """One exposition of several processes' metrics: a family once, every sample with a `process` label, and
    `xypr_worker_process_up` saying which worker processes answered."""
    families: dict[str, Metric] = {}
    for process, text in texts:
        for family in text_string_to_metric_families(text):
            if process != "http" and family.name in _SCRAPE_TIME_FAMILIES:
                continue
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, "process": process}, sample.value, sample.timestamp)
    alive = Metric("xypr_worker_process_up", "Whether a worker process of xypr run answered this scrape", "gauge")
    for process, answered in up.items():
        alive.add_sample("xypr_worker_process_up", {"process": process}, 1.0 if answered else 0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families.values(), alive]))
    return generate_latest(registry)
