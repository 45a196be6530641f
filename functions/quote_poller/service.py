"""One scheduled poll: which symbols, their marks, the fetch, the put, the new marks.

No boto3 and no event shapes: the handler hands in the slot (the schedule's period number) and
a deadline, the state table and the stream come in as ports. Marks are saved only after every
tick was accepted by the stream, so a failed put is polled and sent again next time (the
aggregator drops the copies it already counted); a saved mark is never ahead of the stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from functions.quote_poller.polling import PollFailure, QuoteMark, QuotePoller, symbols_due
from market.ticks import Tick
from producer.pipeline import ProduceStats


class MarkStore(Protocol):
    def load(self, provider: str, symbols: Sequence[str]) -> dict[str, QuoteMark]: ...

    def save(self, provider: str, marks: Mapping[str, QuoteMark]) -> None: ...


class TicksNotSent(RuntimeError):
    """The stream did not accept every tick of the poll; marks stay where they were."""


@dataclass(frozen=True)
class PollReport:
    symbols: tuple[str, ...]
    ticks_sent: int
    failures: tuple[PollFailure, ...]

    @property
    def failures_by_reason(self) -> Counter[str]:
        return Counter(f.reason for f in self.failures)


class ScheduledPoll:
    def __init__(
        self,
        poller: QuotePoller,
        marks: MarkStore,
        send: Callable[[Iterable[Tick]], ProduceStats],
        calls_per_poll: int,
    ) -> None:
        self._poller = poller
        self._marks = marks
        self._send = send
        self._calls_per_poll = calls_per_poll

    def run(self, slot: int, deadline: float | None) -> PollReport:
        config = self._poller.config
        symbols = symbols_due(config.symbols, self._calls_per_poll, slot)
        self._poller.marks.update(self._marks.load(config.provider, symbols))
        found = self._poller.poll(symbols, deadline)
        if found.ticks:
            stats = self._send(found.ticks)
            if not stats.complete:
                # The in-memory marks moved with the poll; the stored ones are the truth again.
                for symbol in found.changed:
                    self._poller.marks.pop(symbol, None)
                problem = stats.fatal_error or f"entry errors {dict(stats.entry_errors)}"
                raise TicksNotSent(
                    f"{stats.ticks_failed} of {stats.ticks_read} ticks not accepted: {problem}"
                )
        self._marks.save(config.provider, found.changed)
        return PollReport(symbols, len(found.ticks), tuple(found.failures))
