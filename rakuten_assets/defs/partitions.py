"""The 21 percentage partitions shared by every partitioned asset."""

import dagster as dg

from rakuten_assets.data.partitions import PARTITION_KEYS

products_partitions = dg.StaticPartitionsDefinition(list(PARTITION_KEYS))
