"""`evolver serve`: the current generation (or any other) behind an OpenAI-compatible HTTP API."""
