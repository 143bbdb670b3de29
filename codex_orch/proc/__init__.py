"""The one place that starts child processes, and the process groups they run in."""
