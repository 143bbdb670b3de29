"""A run: creating, driving and resuming it; the scheduler, one task's executor, prompts, answer
validation, services."""
