"""External tools: the one command runner, version pins, and the machine check."""
