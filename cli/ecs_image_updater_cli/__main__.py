"""`python -m ecs_image_updater_cli`: the same as the `ecs-image-updater` command."""

from ecs_image_updater_cli.main import main

raise SystemExit(main())
