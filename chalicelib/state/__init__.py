"""The state table: locks and deployment records."""
