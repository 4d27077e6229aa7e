"""The one update path and what uses it directly: update and fan-out, rollback, descriptions and apply."""
