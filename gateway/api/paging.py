"""Paging as every Calls API list does it: ``page`` from 0, ``size`` 1..100 (default 20)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query


@dataclass(frozen=True)
class Page:
    page: int
    size: int

    @property
    def offset(self) -> int:
        return self.page * self.size

    def envelope(self, results: Sequence[Any], total: int) -> dict[str, Any]:
        return {
            "results": list(results),
            "paging": {
                "page": self.page,
                "size": self.size,
                "totalPages": (total + self.size - 1) // self.size,
                "totalResults": total,
            },
        }

    def slice(self, items: Sequence[Any]) -> dict[str, Any]:
        return self.envelope(items[self.offset : self.offset + self.size], len(items))


def page_params(
    page: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page:
    return Page(page, size)
