"""The kernel stages' helpers: reading packages, running builds, Kconfig, spec text."""
