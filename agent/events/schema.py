"""What the endpoint accepts: one event, a list of events, or {"events": [...], "token", "csrf"}.

Each event is validated with pydantic; `video.*` and `progress.mark` events have typed params
(the progress fold relies on them), any other name takes free-form JSON params. One invalid event
refuses the whole request with every problem listed (400), so nothing invalid is ever buffered.
Unknown top-level fields are dropped: identity is never taken from the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from sitelog.buffer.store import encode
from sitelog.config import EVENT_NAME

from .. import jsonlimit
from .refusal import Refused

VIDEO_EVENTS = ("video.play", "video.pause", "video.seek", "video.progress", "video.ended")
MARK_EVENT = "progress.mark"
RESERVED_PREFIXES = ("video.", "progress.")
MAX_DETAILS = 20
MAX_SECONDS = 1_000_000.0

Name = Annotated[str, StringConstraints(pattern=EVENT_NAME)]
ParamKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")]
PageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Url = Annotated[str, StringConstraints(max_length=2_048, pattern=r"^https?://[^\s]+$")]
# Client time in ms since the epoch (Date.now()); up to 2^53, JavaScript's exact integers.
ClientTime = Annotated[float, Field(gt=0, lt=2**53, allow_inf_nan=False)]


class VideoParams(BaseModel):
    """Params of a `video.*` event: which tutorial, where the playhead is, what was played."""

    model_config = ConfigDict(extra="forbid")

    course: Label
    tutorial: Label
    language: Label
    position: Seconds
    duration: Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)] | None = None
    played: list[tuple[Seconds, Seconds]] = Field(default_factory=list, max_length=100)
    previous: Seconds | None = None  # video.seek: where the playhead was before the seek

    @field_validator("played")
    @classmethod
    def _ordered(cls, ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if any(start > end for start, end in ranges):
            raise ValueError("each played range must be [start, end] with start <= end")
        return ranges


class MarkParams(BaseModel):
    """Params of `progress.mark`: the learner marks a tutorial complete or not complete."""

    model_config = ConfigDict(extra="forbid")

    course: Label
    tutorial: Label
    language: Label
    completed: StrictBool


class BaseEvent(BaseModel):
    """The fields every event has; unknown ones (a `user` id, say) are dropped, never stored."""

    model_config = ConfigDict(extra="ignore")

    id: UUID
    url: Url
    ts: ClientTime
    page: PageId | None = None
    n: Annotated[int, Field(ge=0, lt=2**31)] | None = None


class VideoEvent(BaseEvent):
    name: Literal[VIDEO_EVENTS]  # type: ignore[valid-type]
    params: VideoParams
    page: PageId  # visits are counted by page load


class MarkEvent(BaseEvent):
    name: Literal["progress.mark"]
    params: MarkParams


def _no_nested_arrays(value: Any, inside_array: bool = False) -> bool:
    if isinstance(value, list):
        return not inside_array and all(_no_nested_arrays(item, True) for item in value)
    if isinstance(value, dict):
        return all(_no_nested_arrays(item) for item in value.values())
    return True


class CustomEvent(BaseEvent):
    name: Name
    params: dict[ParamKey, JsonValue] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _storable(cls, params: dict[str, Any]) -> dict[str, Any]:
        if not _no_nested_arrays(params):
            raise ValueError("arrays directly inside arrays cannot be stored (FerretDB); "
                             "wrap the inner ones in objects")
        return params

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.startswith(RESERVED_PREFIXES):
            raise ValueError(f"names starting with {' or '.join(RESERVED_PREFIXES)} are reserved; "
                             f"known: {', '.join((*VIDEO_EVENTS, MARK_EVENT))}")
        return name


def _tag(value: Any) -> str:
    name = value.get("name") if isinstance(value, Mapping) else getattr(value, "name", None)
    if isinstance(name, str) and name.startswith("video."):
        return "video"
    return "mark" if name == MARK_EVENT else "custom"


AnyEvent = Annotated[
    Annotated[VideoEvent, Tag("video")] | Annotated[MarkEvent, Tag("mark")]
    | Annotated[CustomEvent, Tag("custom")],
    Discriminator(_tag),
]
_validate = TypeAdapter(AnyEvent).validate_python
TAGS = {"video", "mark", "custom"}


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated request body: its events and the credentials it carried."""

    events: list[BaseEvent]
    token: str | None
    csrf: str | None


@dataclass(frozen=True, slots=True)
class Limits:
    max_events: int
    max_event_bytes: int


def _where(index: int | None, loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in TAGS]
    head = "event" if index is None else f"events[{index}]"
    return ".".join([head, *parts])


def _credential(envelope: Mapping[str, Any], key: str) -> str | None:
    value = envelope.get(key)
    if value is None or (isinstance(value, str) and len(value) <= 512):
        return value
    raise Refused(400, "invalid", f"`{key}` must be a string of at most 512 characters")


def split(body: bytes) -> tuple[list[Any], str | None, str | None, bool]:
    """(raw events, token, csrf, batched?) from the JSON body; Refused(400) if it is no JSON."""
    try:
        data = jsonlimit.loads(body)  # nesting bounded before parsing: no RecursionError
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "malformed", f"the body is not JSON: {exc}") from None
    if isinstance(data, list):
        return data, None, None, True
    if not isinstance(data, dict):
        raise Refused(400, "invalid", "the body must be an event, a list of events or "
                                      '{"events": [...]}')
    if "events" not in data:
        return [data], None, None, False
    if not isinstance(data["events"], list):  # other keys (a `user` id, say) are ignored
        raise Refused(400, "invalid", '{"events": [...]} takes a list of events')
    return data["events"], _credential(data, "token"), _credential(data, "csrf"), True


def validate(raw: list[Any], limits: Limits, batched: bool,
             body_bytes: int | None = None) -> list[BaseEvent]:
    """The validated events; Refused(400/413) listing every problem (at most MAX_DETAILS).

    Events are measured one by one only when the whole body (`body_bytes`) could hold one
    larger than the limit.
    """
    if not raw:
        raise Refused(400, "invalid", "no events in the request")
    if len(raw) > limits.max_events:
        raise Refused(413, "too_many_events", f"{len(raw)} events in one request; at most "
                      f"{limits.max_events} (browser.max_events_per_request)")
    events: list[BaseEvent] = []
    details: list[dict[str, Any]] = []
    measure = body_bytes is None or body_bytes > limits.max_event_bytes
    for index, item in enumerate(raw):
        where = index if batched else None
        if measure and len(encode(item)) > limits.max_event_bytes:
            details.append({"loc": _where(where, ()), "msg": f"larger than "
                            f"{limits.max_event_bytes} bytes (browser.max_event_bytes)"})
            continue
        try:
            events.append(_validate(item))
        except ValidationError as exc:
            details.extend({"loc": _where(where, err["loc"]), "msg": err["msg"]}
                           for err in exc.errors(include_url=False))
    if details:
        oversized = all("max_event_bytes" in detail["msg"] for detail in details)
        raise Refused(413 if oversized else 400, "too_large" if oversized else "invalid",
                      f"{len(details)} problem(s); nothing was stored",
                      details=details[:MAX_DETAILS])
    return events


def parse(body: bytes, limits: Limits) -> Batch:
    """Split and validate a request body."""
    raw, token, csrf, batched = split(body)
    return Batch(validate(raw, limits, batched, len(body)), token, csrf)


def record(event: BaseEvent) -> dict[str, Any]:
    """The buffered fields of one event (identity and request facts are added by the endpoint).

    The page URL is split so the privacy processor redacts its query like a request's; played
    ranges become {"start", "end"} objects.
    """
    parts = urlsplit(event.url)
    params = event.params  # type: ignore[attr-defined]
    if isinstance(event, VideoEvent | MarkEvent):
        params = params.model_dump(exclude_none=True)
    if isinstance(event, VideoEvent):  # [[start, end], ...] -> objects: no nested arrays
        params["played"] = [{"start": start, "end": end} for start, end in params["played"]]
    data: dict[str, Any] = {
        "client_id": str(event.id),
        "name": event.name,  # type: ignore[attr-defined]
        "params": params,
        "url": f"{parts.scheme}://{parts.netloc}{parts.path}",
        "client_ts": int(event.ts),
    }
    if parts.query:
        data["query"] = parts.query
    if event.page is not None:
        data["page"] = event.page
    if event.n is not None:
        data["n"] = event.n
    return data
