-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER: one database per consumer, all owned by that user.
--   rakuten  the project's products, partitions, predictions and inference log
--   dagster  Dagster's runs, events and schedules (dagster-postgres)
--   mlflow   the MLflow tracking server's backend store (experiments, runs, model registry)
-- Idempotent: a database that exists already (POSTGRES_DB) is skipped.
SELECT format('CREATE DATABASE %I OWNER %I', name, current_user)
FROM unnest(ARRAY['rakuten', 'dagster', 'mlflow']) AS name
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name)
\gexec
