"""Errors of the producer side: the Kafka client, the token store and the HTTP bridge.

An invalid action is not one of these: it is
:class:`kernel.contract.actions.InvalidActionError`, raised by the schema's one home before
anything is sent.
"""

from __future__ import annotations

from kernel.errors import MotcuaError, UserError


class ProducerError(MotcuaError):
    """Base of the producer-side errors."""


class DeliveryError(ProducerError):
    """Actions could not be acknowledged by the broker after every retry.

    Some of them may have reached the topic; sending them again is safe because the engine
    keeps one fact per (``source``, ``action_id``).
    """

    def __init__(self, message: str, *, action_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.action_ids = action_ids


class LogChangedError(ProducerError):
    """The topic's log changed (a new cluster or a recreated topic) after records were sent.

    The bundled broker acknowledges records for a topic it has forgotten, so an acknowledgement
    only counts once the log it was given by is known to still be the same.
    """


class TokenError(ProducerError, UserError):
    """A token-store request that cannot be done; shown as one sentence by the CLI."""


class UnknownSourceError(TokenError):
    """No token was ever issued to this source (or it was revoked)."""


class SourceExistsError(TokenError):
    """The source already holds a token; rotate it instead of adding another."""


class InvalidGrantError(TokenError):
    """A source name or agency scope that cannot be stored."""


class RefusedRequestError(ProducerError):
    """An HTTP bridge request that is refused as a whole; nothing of it is sent.

    ``status`` is the HTTP status, ``reason`` a stable machine-readable code, ``index`` the
    position of the offending action in the request (``None`` when the request as a whole is
    refused) and ``field`` its dotted path.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str,
        index: int | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.index = index
        self.field = field
        self.headers = headers or {}

    @property
    def message(self) -> str:
        return str(self.args[0])
