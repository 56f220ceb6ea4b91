"""The running platform around the code location: the local services (`rakuten stack`, `make
demo`), the Dagster instance's storage classes, and the client-side checks of a running server.

Nothing here defines assets; `rakuten_assets.defs` does.
"""
