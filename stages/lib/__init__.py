"""Helpers more than one domain uses (rpm macros for the kernel and network packages)."""
