"""Rakuten France product classification: a Dagster code location and the plain modules it calls."""
