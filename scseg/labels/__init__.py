"""Label sets and left / right structure pairs (below config and data: both use them)."""
