"""Offline helpers for tests, examples and demos of massgen-tracing (no network, no API keys)."""
