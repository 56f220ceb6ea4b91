"""HTTP inference with LitServe: the production model of the MLflow registry, hot-reloaded."""
