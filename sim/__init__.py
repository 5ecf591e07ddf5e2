"""The SimPy host: the kernel's actors in virtual time, scenarios, and results."""
