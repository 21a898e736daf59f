"""Log formats built on the plain writers (`shared.logs.writers`): native CI sections (GitLab,
GitHub), server-sent events, and the failure digest that ends a failed run's stream."""
