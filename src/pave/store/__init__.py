"""Pave's metadata store: tables, engines and sessions, migrations."""
