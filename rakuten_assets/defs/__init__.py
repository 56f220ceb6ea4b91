"""Dagster definitions, one module per concern; they call the plain modules of the package."""
