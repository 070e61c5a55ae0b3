"""Compare JSON payloads by structure (keys and value types), as contracts are examples, not values."""

from __future__ import annotations

from typing import Any

__all__ = ["covers", "shape"]


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively; a list is described by its first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def covers(actual: Any, expected: Any, path: str = "$") -> list[str]:
    """Where `actual` lacks a key of `expected` or has another type there (empty list: it covers)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object"]
        problems: list[str] = []
        for key, item in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(covers(actual[key], item, f"{path}.{key}"))
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list"]
        if expected and actual:
            return covers(actual[0], expected[0], f"{path}[0]")
        return []
    if type(actual) is not type(expected):
        return [f"{path}: {type(actual).__name__} instead of {type(expected).__name__}"]
    return []
