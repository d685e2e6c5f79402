"""Shared pytest fixtures for the p2p packages (installed in every test env)."""
