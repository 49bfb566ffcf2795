"""Placeholder: filled in by the attention family."""
