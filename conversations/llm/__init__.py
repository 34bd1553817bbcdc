"""LLM providers behind one Protocol (base.LLMProvider): one module per provider."""
