"""FastAPI adapter: the app factory and the ordered auth, rate limit and metrics chain."""
