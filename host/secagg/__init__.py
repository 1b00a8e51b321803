"""Secure aggregation (SecAgg+): host-side reference crypto and protocol."""
