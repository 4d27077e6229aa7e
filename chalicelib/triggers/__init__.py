"""What starts a deployment from outside: registry pushes and the CodePipeline action."""
