"""ecs-image-updater: the command-line client of the ECS image updater service (standard library and PyYAML only)."""

__version__ = "0.1.0"
