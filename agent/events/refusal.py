"""A refused events request: the HTTP status and the JSON error body the client gets."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """Raised by any check of the endpoint; nothing of the request reaches the buffer."""

    def __init__(
        self, status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON error: {"error": code, "message": ..., "details": [{"loc", "msg"}]}."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body
