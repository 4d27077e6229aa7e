"""A benchmark of this service's update against the `ecs-deploy` package, on one moto backend.

Run it with `.venv/bin/python bench/run.py`; the results go to `bench/results.md`.
"""
