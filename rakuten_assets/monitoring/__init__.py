"""Monitoring logic with no Dagster import: drift statistics and test traffic."""
