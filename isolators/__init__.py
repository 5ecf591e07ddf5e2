"""The host side of an agent on a real machine: containerizer, isolators, resource discovery."""
