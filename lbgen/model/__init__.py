"""The typed spec of a load-balancing path."""
