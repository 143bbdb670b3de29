"""What the commands do (report, merge, clean, validate, preflight, planner, runs), as plain functions
that return results; the CLI renders them."""
