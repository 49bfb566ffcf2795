"""Placeholder: filled in by the mobile family."""
