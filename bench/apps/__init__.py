"""One small app module per bench variant, all serving the same endpoint."""
