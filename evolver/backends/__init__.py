"""Generation backends behind one small interface (transformers, vLLM, OpenAI-compatible)."""
