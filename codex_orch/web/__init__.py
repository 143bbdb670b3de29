"""The dashboard: live pages of a repository's runs over a read-only API of what is on disk (web/app.py)."""
