"""How requests and events enter: the request log line."""
