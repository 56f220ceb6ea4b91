"""Ingestion assets: `raw_products` (a partition read from the files) -> `products` (loaded).

Both are partitioned by percentage. Bad data is stopped twice: the load itself refuses rows
that break a blocking rule (nothing is written), and the blocking checks on `products` judge
what was stored; a check that fails reverts the load (`reverted` in data_loads), so a
partition with bad data never reaches training.
"""

from collections.abc import Callable

import dagster as dg
import pandas as pd
from sqlalchemy import Connection

from rakuten_assets.data import quality
from rakuten_assets.data.categories import category_name
from rakuten_assets.data.challenge_files import ChallengeFileError
from rakuten_assets.data.partitions import PartitionDelta, partition_delta
from rakuten_assets.db.loader import (
    Enforcement,
    LoadRefused,
    enforce_blocking_rule,
    load_partition,
)
from rakuten_assets.db.queries import current_products
from rakuten_assets.defs.partitions import ONE_PARTITION_PER_RUN, products_partitions
from rakuten_assets.defs.resources import ChallengeFilesResource, DatabaseResource


def class_count_table(counts: pd.DataFrame) -> dg.TableMetadataValue:
    """A metadata table of integer counts per class (index: prdtypecode), with category names."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "prdtypecode": int(code),
                    "category": category_name(code),
                    **{str(k): int(v) for k, v in row.items()},
                }
            )
            for code, row in counts.iterrows()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("prdtypecode", "int"),
                dg.TableColumn("category", "string"),
                *(dg.TableColumn(str(name), "int") for name in counts.columns),
            ]
        ),
    )


@dg.asset(
    partitions_def=products_partitions,
    backfill_policy=ONE_PARTITION_PER_RUN,
    group_name="ingestion",
    kinds={"csv", "pandas"},
    code_version="1",
)
def raw_products(
    context: dg.AssetExecutionContext, challenge_files: ChallengeFilesResource
) -> dg.Output[PartitionDelta]:
    """The rows this percentage adds, read and validated from the challenge CSV files."""
    try:
        training = challenge_files.training_set()
    except ChallengeFileError as error:
        raise dg.Failure(
            description=str(error),
            metadata={
                "file": str(error.path),
                "line": error.line or 0,
                "column": error.column or "",
            },
        ) from error
    delta = partition_delta(training, context.partition_key)
    part = delta.slice
    return dg.Output(
        delta,
        metadata={
            "dagster/row_count": part.rows,
            "percentage": part.percentage,
            "shuffle_positions": f"[{part.start}, {part.end})",
            "training_rows": delta.total_rows,
            "class_counts": class_count_table(
                delta.frame["prdtypecode"].value_counts().sort_index().to_frame("rows")
            ),
            "source_hashes": dg.MetadataValue.json(delta.source_hashes),
            "data_dir": str(challenge_files.directory()),
        },
    )


@dg.asset(
    partitions_def=products_partitions,
    backfill_policy=ONE_PARTITION_PER_RUN,
    group_name="ingestion",
    kinds={"sqlalchemy", "postgres", "sqlite"},
    code_version="1",
)
def products(
    context: dg.AssetExecutionContext, raw_products: PartitionDelta, database: DatabaseResource
) -> dg.MaterializeResult:
    """The products table after loading this partition, with its audit trail (one transaction)."""
    try:
        result = load_partition(
            database.engine(),
            context.partition_key,
            raw_products.frame,
            raw_products.source_hashes,
            dagster_run_id=context.run.run_id,
            expected_rows=raw_products.slice.rows,
        )
    except LoadRefused as error:
        raise dg.Failure(
            description=str(error),
            metadata={
                "rule": error.rule or "",
                "failing_rows": error.failing_rows,
                "example_productids": dg.MetadataValue.json(error.examples),
            },
        ) from error
    context.log.info(
        f"load {result.load_id} ({result.batch_name}): +{result.rows_added} "
        f"~{result.rows_updated} -{result.rows_deleted}, {result.total_rows} rows in total"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.total_rows,
            "load_id": result.load_id,
            "batch_name": result.batch_name,
            "percentage": result.percentage,
            "rows_added": result.rows_added,
            "rows_updated": result.rows_updated,
            "rows_deleted": result.rows_deleted,
            "rows_unchanged": result.rows_unchanged,
            "total_rows": result.total_rows,
        }
    )


def _check_result(
    context: dg.AssetCheckExecutionContext, enforcement: Enforcement
) -> dg.AssetCheckResult:
    outcome = enforcement.outcome
    metadata: dict[str, object] = {
        "failing_rows": outcome.failing_rows,
        "example_productids": dg.MetadataValue.json(outcome.examples),
    }
    if enforcement.load_id is not None:
        metadata["load_id"] = enforcement.load_id
    description = outcome.description
    if enforcement.revert is not None:
        revert = enforcement.revert
        metadata["reverted"] = dg.MetadataValue.json(revert.as_dict())
        description += (
            f"; load {revert.load_id} reverted ({revert.rows_deleted} row(s) deleted, "
            f"{revert.rows_restored} restored, {revert.rows_reinserted} re-inserted)"
        )
        context.log.error(f"partition {context.partition_key}: {description}")
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def _enforce(
    context: dg.AssetCheckExecutionContext,
    database: DatabaseResource,
    name: str,
    evaluate: Callable[[Connection], quality.RuleOutcome],
) -> dg.AssetCheckResult:
    """Apply a blocking rule to this run's load of the partition; a failure reverts the load."""
    enforcement = enforce_blocking_rule(
        database.engine(), context.partition_key, context.run.run_id, name, evaluate
    )
    return _check_result(context, enforcement)


@dg.asset_check(
    asset=products,
    blocking=True,
    partitions_def=products_partitions,
    additional_ins={"raw_products": dg.AssetIn()},
)
def row_count_matches_partition(
    context: dg.AssetCheckExecutionContext, raw_products: PartitionDelta, database: DatabaseResource
) -> dg.AssetCheckResult:
    """The partition holds exactly the rows the partition arithmetic gives it."""
    key, expected = context.partition_key, raw_products.slice.rows
    return _enforce(
        context,
        database,
        quality.ROW_COUNT_RULE,
        lambda connection: quality.row_count_matches(
            len(current_products(connection, key)), expected
        ),
    )


def _rule_check(
    name: str, rule: Callable[[pd.DataFrame], quality.RuleOutcome], whole_table: bool = False
) -> dg.AssetChecksDefinition:
    """A blocking check of `products` applying a plain rule to the partition (or the table)."""

    @dg.asset_check(
        asset=products,
        name=name,
        blocking=True,
        partitions_def=products_partitions,
        description=rule.__doc__,
    )
    def check(
        context: dg.AssetCheckExecutionContext, database: DatabaseResource
    ) -> dg.AssetCheckResult:
        scope = None if whole_table else context.partition_key
        return _enforce(
            context, database, name, lambda connection: rule(current_products(connection, scope))
        )

    return check


no_empty_designation = _rule_check("no_empty_designation", quality.no_empty_designation)
labels_within_codes = _rule_check("labels_within_codes", quality.labels_within_codes)
productid_unique = _rule_check("productid_unique", quality.productid_unique, whole_table=True)


ingest_job = dg.define_asset_job(
    name="ingest",
    selection=dg.AssetSelection.assets(raw_products, products),
    description="Read one percentage partition from the challenge files and load it.",
)

defs = dg.Definitions(
    assets=[raw_products, products],
    asset_checks=[
        row_count_matches_partition,
        no_empty_designation,
        labels_within_codes,
        productid_unique,
    ],
    jobs=[ingest_job],
)
