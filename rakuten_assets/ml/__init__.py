"""Machine-learning logic with no Dagster import: features, dataset, model, registry."""
