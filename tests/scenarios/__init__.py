"""Scenario builders and checks shared by the unit and cluster tiers, by topic."""
