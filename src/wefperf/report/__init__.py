"""Console, JSON and S3 result rendering."""
