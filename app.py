"""The ECS image updater: one Chalice app, its entry points wired in by kind.

- HTTP routes: chalicelib/entrypoints/routes.py (every route answers through
  chalicelib/entrypoints/respond.py: sign-in, body rules, errors, log line);
- the dashboard's page and static files: chalicelib/entrypoints/dashboard.py
  (no sign-in: the page's script calls the routes with the caller's key);
- event functions: chalicelib/entrypoints/functions.py (ECS deployment events,
  ECR pushes, the push work queue, the follower index's tag events and hourly
  reconcile, CodePipeline jobs).
"""

from __future__ import annotations

from chalice import Chalice

from chalicelib.core.config import load_settings, unsafe_aws_endpoint
from chalicelib.entrypoints import requestlog
from chalicelib.entrypoints.dashboard import dashboard
from chalicelib.entrypoints.functions import functions
from chalicelib.entrypoints.respond import json_answers_say_so
from chalicelib.entrypoints.routes import routes

if load_settings().require_loopback_aws and (problem := unsafe_aws_endpoint()):
    # The local stage must never reach real AWS by accident: refuse to start.
    raise RuntimeError(f"the local stage only runs against an AWS on this machine: {problem}")

app = Chalice(app_name="ecs-image-updater")
app.debug = False
requestlog.configure()

# Middleware first: a blueprint's event functions take the app's middleware when they are registered.
app.register_middleware(json_answers_say_so, "http")
app.register_blueprint(routes)
app.register_blueprint(dashboard)
app.register_blueprint(functions)
