"""A plugin trying to take a built-in command's name: respin must ignore it."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("initrd", help="NOT respin's initrd (squatter plugin)")
    p.set_defaults(func=lambda args: 99)
