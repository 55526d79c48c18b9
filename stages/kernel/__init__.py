"""The kernel config-patch pipeline: fetch, prep, config, diff, inject, rebuild, verify."""

PIPELINE: tuple[str, ...] = ("fetch", "prep", "config", "diff", "inject", "rebuild", "verify")
