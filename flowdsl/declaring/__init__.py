"""What a decorator captures: task specs, the `@task` keywords, retry policies."""
