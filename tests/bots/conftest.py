from tests.fakes.fixtures import conversation_a, fake_anthropic, fake_openai, fast_timeouts  # noqa: F401
