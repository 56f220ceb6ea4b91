"""Data logic with no Dagster import: the challenge files, categories, partitions, generator."""
