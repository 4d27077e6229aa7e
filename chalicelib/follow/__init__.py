"""After a deployment: outcomes from ECS events, deployment and service status, history, discovery, notifications."""
