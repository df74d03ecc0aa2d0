"""Restoring images: one image (``restore``) and many files (``batch``)."""
