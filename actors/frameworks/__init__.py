"""Frameworks: the scheduler base class and the batch framework."""
