"""The key visitor WebSocket protocol cases against uvicorn (benchmarks/streaming.py --server uvicorn): the app must
behave the same under either server. The cases are the daphne tests' own, run on a uvicorn."""

from __future__ import annotations

import pytest

from . import test_widget_socket_live as daphne_cases
from .conftest import ChatServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def chat_server(uvicorn_chat_server: ChatServer) -> ChatServer:
    return uvicorn_chat_server


test_a_visitor_gets_a_streamed_answer_in_numbered_frames = (
    daphne_cases.test_a_visitor_gets_a_streamed_answer_in_numbered_frames
)
test_handshakes_without_a_valid_token_origin_or_bot_are_refused = (
    daphne_cases.test_handshakes_without_a_valid_token_origin_or_bot_are_refused
)
test_binary_and_malformed_frames_get_bad_frame_and_the_socket_stays_usable = (
    daphne_cases.test_binary_and_malformed_frames_get_bad_frame_and_the_socket_stays_usable
)
test_an_oversized_frame_closes_the_socket_with_1009 = daphne_cases.test_an_oversized_frame_closes_the_socket_with_1009
test_resuming_gives_the_missed_frames_and_the_live_tail_without_gaps_or_duplicates = (
    daphne_cases.test_resuming_gives_the_missed_frames_and_the_live_tail_without_gaps_or_duplicates
)
test_stop_ends_the_answer_as_partial_and_keeps_what_was_shown = (
    daphne_cases.test_stop_ends_the_answer_as_partial_and_keeps_what_was_shown
)
