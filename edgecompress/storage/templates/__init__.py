"""Standalone modules copied into deploy zips (numpy + the standard library only)."""
