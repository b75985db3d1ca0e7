"""Side-by-side benchmarks of the protected request path and of code generation."""
