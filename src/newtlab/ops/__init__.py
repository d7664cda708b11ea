"""Lab operations: deploy, destroy, status, node stop/start, provision."""
