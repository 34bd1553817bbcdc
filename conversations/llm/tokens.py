"""Token counting that never needs the network.

tiktoken downloads its encodings on first use, which fails offline; it is used only when
TIKTOKEN_CACHE_DIR points at a directory that already holds them. Otherwise we over-estimate
(one token per 3 characters, about 30% above English text), so budgets are never exceeded.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable

from django.conf import settings

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 3


@functools.cache
def _tiktoken_counter(cache_dir: str) -> Callable[[str], int] | None:
    if not cache_dir or not os.path.isdir(cache_dir) or not os.listdir(cache_dir):
        return None
    try:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", cache_dir)
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # no package, a missing file or no network: estimate instead
        log.info("tiktoken unavailable (%s); using the conservative estimate", exc)
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def estimate_tokens(text: str) -> int:
    counter = _tiktoken_counter(settings.TIKTOKEN_CACHE_DIR)
    if counter is not None:
        return counter(text)
    return math.ceil(len(text) / CHARS_PER_TOKEN)
