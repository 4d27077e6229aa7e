"""Domain code of the ECS image updater; `app.py` is only its HTTP face."""
