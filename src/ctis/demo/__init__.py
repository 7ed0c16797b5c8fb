"""Synthetic, deterministic demo data (no real person is in it)."""
