"""The bench's readable output: one table of baselines and one of runs, each figure beside its ceiling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["baseline_table", "cpu_line", "profile_lines", "run_line", "runs_table"]

_SHORT_ROLES = {
    "gateway": "gw",
    "inbound-transformer": "in",
    "genesys-api": "ga",
    "outbound-transformer": "out",
    "whatsapp-api": "wa",
    "xypr-run": "xypr",
    "emulators": "emu",
    "loadgen": "gen",
    "postgres": "pg",
    "rabbitmq": "mq",
    "redis": "redis",
    "moto": "s3",
    "machine": "machine",
    "not ours": "others",
}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _triple(block: dict[str, Any] | None) -> str:
    if not block or block.get("p50") is None:
        return "-"
    return f"{_ms(block['p50'])}/{_ms(block['p95'])}/{_ms(block['p99'])}"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _ack_ratio(ratios: dict[str, float | None]) -> str:
    """Saturation: ack rate over the bare ceiling; fixed rate: p99 as a multiple of the bare one's."""
    if ratios.get("ack_vs_http") is not None:
        return f"{ratios['ack_vs_http']:.3f}"
    if ratios.get("ack_p99_vs_http") is not None:
        return f"p99 x{ratios['ack_p99_vs_http']:.0f}"
    return "-"


def _cpu_cost(cost: dict[str, float | None] | None) -> str:
    """`bridge+services` CPU milliseconds per message."""
    if not cost or cost.get("bridge") is None:
        return "-"
    return f"{cost['bridge']:.1f}+{cost['services']:.1f}"


def cpu_line(shares: dict[str, float] | None) -> str:
    """Cores used per role, busiest first, then the machine total and what was not ours."""
    if not shares:
        return ""
    roles = [(k, v) for k, v in shares.items() if k not in ("machine", "not ours") and v >= 0.05]
    roles.sort(key=lambda item: -item[1])
    parts = [f"{_SHORT_ROLES.get(k, k)} {v:.2f}" for k, v in roles]
    return " ".join(parts) + f" | machine {shares.get('machine', 0):.2f} others {shares.get('not ours', 0):.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def baseline_table(baselines: dict[str, Any]) -> str:
    """Ceilings: the generator, bare ASGI at each rate and at saturation, the brokers."""
    rows: list[list[str]] = []
    for name, item in baselines.items():
        if "ack_rate" in item:
            rows.append([name, _num(item.get("ack_rate")), _triple(item.get("ack_ms")), item.get("note", "")])
        else:
            rows.append([name, _num(item.get("rate")), _triple(item.get("round_trip_ms")), item.get("note", "")])
    return _table(["baseline", "msg/s", "p50/p95/p99 ms", "note"], rows)


def run_line(row: dict[str, Any]) -> str:
    """One run in one line, for progress output."""
    ack = row.get("ack") or {}
    e2e = row.get("e2e") or {}
    parts = [
        f"[{row['backend']}] {row['scenario']}: {row['label']}",
        f"sent {ack.get('sent', '-')} acked {ack.get('acked', '-')} ({_num(ack.get('ack_rate'))}/s, "
        f"ack {_triple(ack.get('ack_ms'))} ms)",
    ]
    if e2e:
        parts.append(
            f"arrived {e2e['arrived']} dup {e2e['duplicated']} lost {e2e['lost']} pending {e2e.get('pending', 0)} "
            f"ooo {e2e['out_of_order']} "
            f"({_num(e2e.get('e2e_rate'))}/s, e2e {_triple(e2e.get('e2e_ms'))} ms)"
        )
    return " | ".join(parts)


def runs_table(rows: Sequence[dict[str, Any]]) -> str:
    """Every run: what was offered, what came back, the counts, the ratios to the ceilings."""
    header = [
        "backend", "scenario", "run", "sent", "ack/s", "ack ms p50/95/99", "/HTTP",
        "arrived", "dup", "lost", "pend", "ooo", "e2e/s", "e2e ms p50/95/99", "/HTTP", "/broker", "cpu ms/msg",
    ]  # fmt: skip
    lines: list[list[str]] = []
    for row in rows:
        if row.get("skipped"):
            lines.append([row["backend"], row["scenario"], row["label"], "skipped: " + row["skipped"]] + [""] * 13)
            continue
        ack = row.get("ack") or {}
        e2e = row.get("e2e") or {}
        ratios = row.get("ratios") or {}
        lines.append(
            [
                row["backend"],
                row["scenario"],
                row["label"],
                str(ack.get("sent", "-")),
                _num(ack.get("ack_rate")),
                _triple(ack.get("ack_ms")),
                _ack_ratio(ratios),
                str(e2e.get("arrived", "-")),
                str(e2e.get("duplicated", "-")),
                str(e2e.get("lost", "-")),
                str(e2e.get("pending", "-")),
                str(e2e.get("out_of_order", "-")),
                _num(e2e.get("e2e_rate")),
                _triple(e2e.get("e2e_ms")),
                _num(ratios.get("e2e_vs_http"), 3),
                _num(ratios.get("e2e_vs_broker"), 2),
                _cpu_cost(row.get("cpu_ms_per_message")),
            ]
        )
    return _table(header, lines)


def profile_lines(profiles: dict[str, Any], limit: int = 8) -> list[str]:
    """Per profiled process: CPU time by area and the functions with the most own CPU time (in %)."""
    out: list[str] = []
    for name, summary in profiles.items():
        areas: dict[str, float] = summary.get("areas", {})
        busy = sum(areas.values()) or 1.0
        wall = summary.get("wall_seconds") or 0.0
        out.append(f"{name}: {busy:.1f} CPU s in {wall:.1f} s ({busy / wall if wall else 0:.2f} cores)")
        for area, seconds in list(areas.items())[:limit]:
            out.append(f"    {100 * seconds / busy:5.1f} %  {area}")
        for item in summary.get("top", [])[:limit]:
            out.append(f"      {100 * item['seconds'] / busy:5.1f} %  {item['function']}  ({item['file']})")
    return out
