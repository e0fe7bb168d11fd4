"""The evaluator: static check, compile, verify, time and profile candidates in isolated workers."""
