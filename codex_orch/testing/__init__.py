"""Stand-ins shipped for demos and tests (the scripted model server). Nothing here is a model."""
