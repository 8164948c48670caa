"""Built-in data: default fund map, market assumptions, sample workspace, icons."""
