"""Shipped weights and the manifest of every known weight file (package data, no code)."""
