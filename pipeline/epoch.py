"""SOURCE_DATE_EPOCH: one reading of it for the engine, every stage and every command."""

from __future__ import annotations

import os

from respin.pipeline.errors import ConfigError


def source_date_epoch(value: str | int | None = None) -> int | None:
    """`value` when given, else $SOURCE_DATE_EPOCH; None when neither is set.

    Anything but a whole, non-negative number of seconds is a ConfigError, so a
    typo never silently turns into "now".
    """
    raw = os.environ.get("SOURCE_DATE_EPOCH") if value is None else value
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        epoch = raw
    elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        epoch = int(raw)
    else:
        raise ConfigError(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds")
    if epoch < 0:
        raise ConfigError(f"SOURCE_DATE_EPOCH={raw!r} is before 1970")
    return epoch
