"""The warehouse: minimised events as day-partitioned Parquet under DuckDB views, kept no longer
than the policy allows."""
