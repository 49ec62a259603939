"""AuthThrottle: blocking, unblocking, resets, one log line per block, bounded memory."""

from __future__ import annotations

import logging

import pytest

from trunks.sip.throttle import AuthThrottle

SOURCE = "198.51.100.7"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> AuthThrottle:
    return AuthThrottle(max_failures=5, window=60, block_for=300, clock=clock)


def test_blocks_after_max_failures_within_window(throttle: AuthThrottle, clock: FakeClock) -> None:
    for _ in range(4):
        assert throttle.failure(SOURCE) is False
        clock.now += 10
        assert throttle.allowed(SOURCE)
    assert throttle.failure(SOURCE) is True
    assert not throttle.allowed(SOURCE)
    assert throttle.allowed("203.0.113.1")  # other sources are unaffected


def test_failures_spread_beyond_the_window_do_not_block(
    throttle: AuthThrottle, clock: FakeClock
) -> None:
    for _ in range(20):
        assert throttle.failure(SOURCE) is False
        clock.now += 15.01  # five failures always span more than 60 s
    assert throttle.allowed(SOURCE)


def test_unblocks_after_block_for_with_a_fresh_count(
    throttle: AuthThrottle, clock: FakeClock
) -> None:
    for _ in range(5):
        throttle.failure(SOURCE)
    clock.now += 299.9
    assert not throttle.allowed(SOURCE)
    clock.now += 0.1
    assert throttle.allowed(SOURCE)
    for _ in range(4):
        assert throttle.failure(SOURCE) is False
    assert throttle.failure(SOURCE) is True


def test_failures_while_blocked_do_not_extend_the_block(
    throttle: AuthThrottle, clock: FakeClock
) -> None:
    for _ in range(5):
        throttle.failure(SOURCE)
    clock.now += 200
    assert throttle.failure(SOURCE) is False
    clock.now += 100
    assert throttle.allowed(SOURCE)


def test_success_resets(throttle: AuthThrottle) -> None:
    for _ in range(4):
        throttle.failure(SOURCE)
    throttle.success(SOURCE)
    for _ in range(4):
        assert throttle.failure(SOURCE) is False
    assert throttle.allowed(SOURCE)
    assert throttle.failure(SOURCE) is True


def test_one_warning_per_block_without_usernames(
    throttle: AuthThrottle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trunks.sip.throttle")
    for index in range(8):
        throttle.failure(SOURCE, f"secret-user-{index % 3}")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert SOURCE in message and "5 failures" in message and "3 usernames" in message
    assert "secret-user" not in message


def test_memory_is_capped_oldest_first(clock: FakeClock) -> None:
    throttle = AuthThrottle(max_failures=3, clock=clock, max_sources=4)
    throttle.failure("10.0.0.1")
    throttle.failure("10.0.0.1")
    for index in range(2, 100):
        throttle.failure(f"10.0.0.{index}")
        assert len(throttle) <= 4
    assert throttle.failure("10.0.0.1") is False  # its two earlier failures were forgotten


def test_blocked_table_is_capped_separately(clock: FakeClock) -> None:
    throttle = AuthThrottle(max_failures=1, clock=clock, max_sources=3)
    for index in range(10):
        assert throttle.failure(f"10.0.1.{index}") is True
    assert len(throttle) == 3
    assert throttle.allowed("10.0.1.0")  # the oldest block was dropped
    assert not throttle.allowed("10.0.1.9")

    spray = AuthThrottle(max_failures=5, clock=clock, max_sources=3)
    for _ in range(5):
        spray.failure(SOURCE)
    for index in range(50):  # one-off failures (spoofed sources) do not push the block out
        spray.failure(f"192.0.2.{index}")
    assert not spray.allowed(SOURCE)


def test_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        AuthThrottle(max_failures=0)
    with pytest.raises(ValueError):
        AuthThrottle(max_sources=0)
