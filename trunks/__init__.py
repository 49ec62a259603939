"""Protocol adapters: each turns its protocol's endpoints into legs of the core's leg model."""
