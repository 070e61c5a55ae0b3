"""`/health`, `/ready` and `/metrics`, mounted on every HTTP service."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
