"""Pave monitoring."""
