"""pytest fixtures for appkit services; loaded through the `pytest11` entry point.

`redis_key(*parts)` names a key under the running test's prefix, deleted after the test.
"""

from appkit_runtime.testing.redis_keys import redis_key

__all__ = ["redis_key"]
