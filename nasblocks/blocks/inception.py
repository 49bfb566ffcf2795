"""Placeholder: filled in by the inception family."""
