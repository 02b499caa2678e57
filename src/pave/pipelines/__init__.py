"""Pave pipelines."""
