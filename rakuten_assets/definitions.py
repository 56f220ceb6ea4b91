"""The Dagster code location: `dagster dev` and `workspace.yaml` load `defs` from here."""

import dagster as dg

from rakuten_assets.defs import automation, ingestion, monitoring, quality, resources, training

# Steps run in the run's own process: the work of a step takes seconds, while starting a
# process per step (importing dagster and pandas again) costs ~7 s on a 2-core machine.
defs = dg.Definitions.merge(
    dg.Definitions(executor=dg.in_process_executor),
    resources.defs,
    ingestion.defs,
    training.defs,
    monitoring.defs,
    quality.defs,
    automation.defs,
)
