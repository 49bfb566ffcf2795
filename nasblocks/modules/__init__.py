"""``nn.Module`` implementations of the blocks (imported only when something is built)."""
