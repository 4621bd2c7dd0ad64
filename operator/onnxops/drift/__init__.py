"""Drift monitoring: statistics, live-count sources, policy. See docs/drift.md."""
