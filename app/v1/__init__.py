"""The OpenAI-compatible API (as vLLM serves it): /v1/completions, /v1/models and the
tokenizer routes lm-evaluation-harness probes. protocol.py holds the bodies, router.py the HTTP
routes, serving.py and choices.py the logic between them and the engine."""
