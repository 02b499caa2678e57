"""Pave integrations."""
