"""Django adapter: decorators over the same framework-free core as the FastAPI dependencies."""
