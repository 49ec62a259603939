"""The B2BUA core: the leg model, its state machine and the call control that drives legs."""
