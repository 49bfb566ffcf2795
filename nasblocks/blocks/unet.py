"""Placeholder: filled in by the unet family."""
