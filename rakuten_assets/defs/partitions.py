"""The 21 percentage partitions shared by every partitioned asset."""

import dagster as dg

from rakuten_assets.data.partitions import PARTITION_KEYS

products_partitions = dg.StaticPartitionsDefinition(list(PARTITION_KEYS))

# A backfill launches one run per partition, in partition order; with the run queue's limit of
# one run at a time per backfill (dagster.yaml), partition P is loaded before P + 3.
ONE_PARTITION_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
