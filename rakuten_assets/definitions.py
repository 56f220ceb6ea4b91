"""The Dagster code location: `dagster dev` and `workspace.yaml` load `defs` from here."""

import warnings

import dagster as dg

# Partitioned asset checks are a preview feature of Dagster 1.13; we rely on them on purpose.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from rakuten_assets.defs import ingestion, resources  # noqa: E402

# Steps run in the run's own process: the work of a step takes seconds, while starting a
# process per step (importing dagster and pandas again) costs ~7 s on a 2-core machine.
defs = dg.Definitions.merge(
    dg.Definitions(executor=dg.in_process_executor), resources.defs, ingestion.defs
)
