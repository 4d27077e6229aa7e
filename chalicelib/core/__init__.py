"""Pure values and rules, no I/O: image references, task definitions, policies, results, errors, settings."""
