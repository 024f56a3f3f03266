"""horae: a distributed, fault-tolerant job scheduler, Dkron-compatible."""

__version__ = "0.1.0"
