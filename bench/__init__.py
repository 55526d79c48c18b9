"""Benchmarks of respin against the tools a user would use instead (`make bench`)."""
