"""`/health`, `/ready` and `/metrics`, mounted on every HTTP service."""

from __future__ import annotations

import asyncio
from typing import Literal

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


class Health(ApiModel):
    """The process is up."""

    status: Literal["ok"]


class Readiness(ApiModel):
    """Whether every backend answers, backend by backend."""

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
    """200 when database, broker, cache and object store all answer, else 503 naming the failing ones."""
    names = ("database", "broker", "cache", "storage")
    checks = await asyncio.gather(
        runtime.database.ping(), runtime.broker.ping(), runtime.cache.ping(), runtime.store.ping(),
        return_exceptions=True,
    )  # fmt: skip
    status = {name: ok is True for name, ok in zip(names, checks, strict=True)}
    ok = all(status.values())
    return JSONResponse({"status": "ready" if ok else "unavailable", "checks": status}, status_code=200 if ok else 503)


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
