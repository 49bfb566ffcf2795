"""Placeholder: filled in by the residual family."""
