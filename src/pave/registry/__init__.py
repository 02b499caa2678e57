"""Pave registry."""
