"""The Dagster code location: `dg`, `dagster dev` and `workspace.yaml` load `defs` from here.

Every module of `rakuten_assets/defs/` declares its own `defs` (assets with their checks, jobs,
sensors, schedules, resources); `load_from_defs_folder` finds and merges them, so a new module
there is picked up without editing this file.
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
