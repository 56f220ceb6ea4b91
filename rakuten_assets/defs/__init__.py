"""Dagster definitions, one module per concern; they call the plain modules of the package."""

import warnings

import dagster as dg

# Features we rely on knowingly: partitioned asset checks (preview), backfill policies and
# dagster-mlflow's resource (beta). Their warnings would repeat at every import.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)
