"""The logging handler: dictConfig, record fields, extras, exceptions, no recursion."""

from __future__ import annotations

import json
import logging
import logging.config
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sitelog.agent.logging import SitelogHandler, json_safe
from sitelog.agent.runtime import get_buffer
from sitelog.config import Config


def config_for(tmp_path, **agent: Any) -> Config:
    return Config.model_validate({"buffer": {"path": str(tmp_path / "buffer.db")},
                                  "agent": agent})


def logs(config: Config) -> list[tuple[float, dict[str, Any]]]:
    rows = get_buffer(config).read_batch(1000)
    assert {row.kind for row in rows} <= {"logs"}
    return [(row.ts, json.loads(row.data)) for row in rows]


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("shop.checkout")
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize("key", ["()", "class"])
def test_dictconfig_and_record_fields(tmp_path, app_logger, key: str) -> None:
    config = config_for(tmp_path)
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"sitelog": {key: "sitelog.agent.logging.SitelogHandler",
                                 "config": config, "level": "INFO"}},
        "loggers": {"shop.checkout": {"handlers": ["sitelog"], "level": "DEBUG",
                                      "propagate": False}},
    })
    before = time.time()
    app_logger.debug("below the handler level")
    app_logger.warning("order %s paid %.2f", "A-17", 9.5,
                       extra={"order": {"id": 17, "items": (1, 2)}, "when": object()})
    [(ts, record)] = logs(config)
    assert before <= ts <= time.time()
    assert record.pop("extra")["order"] == {"id": 17, "items": [1, 2]}
    assert record == {
        "level": "WARNING", "levelno": 30, "logger": "shop.checkout",
        "message": "order A-17 paid 9.50", "module": "test_agent_logging",
        "func": "test_dictconfig_and_record_fields", "line": record["line"],
        "process": record["process"], "thread": "MainThread",
    }
    assert isinstance(record["line"], int) and isinstance(record["process"], int)


def test_extras_are_json_safe(tmp_path, app_logger) -> None:
    config = config_for(tmp_path)
    app_logger.addHandler(SitelogHandler(config=config))
    app_logger.setLevel(logging.INFO)

    class Thing:
        def __str__(self) -> str:
            return "thing!"

    app_logger.info("x", extra={"thing": Thing(), "nums": {1: 2.5}, "none": None, "ok": True})
    [(_, record)] = logs(config)
    assert record["extra"] == {"thing": "thing!", "nums": {"1": 2.5}, "none": None, "ok": True}


def test_exception_and_stack_info(tmp_path, app_logger) -> None:
    config = config_for(tmp_path)
    app_logger.addHandler(SitelogHandler(logging.ERROR, config=config))
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        app_logger.exception("payment failed")
    app_logger.error("with stack", stack_info=True)
    [(_, failed), (_, stacked)] = logs(config)
    assert failed["message"] == "payment failed"
    assert failed["exc"].startswith("Traceback (most recent call last)")
    assert "ZeroDivisionError: division by zero" in failed["exc"]
    assert "stack" not in failed and "extra" not in failed
    assert stacked["stack"].startswith("Stack (most recent call last)")
    assert "exc" not in stacked


def test_bad_format_arguments_never_raise_nor_print(tmp_path, app_logger, capsys) -> None:
    config = config_for(tmp_path)
    handler = SitelogHandler(config=config)
    app_logger.addHandler(handler)
    app_logger.propagate = False
    app_logger.error("needs a number: %d", "not a number")
    [(_, record)] = logs(config)
    assert record["message"].startswith("needs a number: %d (args ['not a number'] did not format")
    assert capsys.readouterr().err == ""
    assert handler.failures.count == 0


def test_sitelog_loggers_are_ignored(tmp_path, app_logger) -> None:
    config = config_for(tmp_path)
    handler = SitelogHandler(config=config)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("sitelog.buffer").error("internal")
        logging.getLogger("sitelog").error("internal")
        app_logger.error("kept")
    finally:
        root.removeHandler(handler)
    assert [record["message"] for _, record in logs(config)] == ["kept"]


def test_append_failure_is_isolated_and_does_not_recurse(tmp_path, app_logger, monkeypatch,
                                                          caplog) -> None:
    config = config_for(tmp_path)
    handler = SitelogHandler(config=config)
    root = logging.getLogger()
    root.addHandler(handler)  # so sitelog's own failure log would reach the handler again
    calls: list[str] = []

    def failing_append(kind: str, data: dict[str, Any], ts: float | None = None) -> bool:
        calls.append(kind)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(handler.buffer, "append", failing_append)
    try:
        with caplog.at_level(logging.ERROR, logger="sitelog.agent"):
            app_logger.error("first")
            app_logger.error("second")
    finally:
        root.removeHandler(handler)
    assert calls == ["logs", "logs"]  # one attempt per record, none for sitelog's own log line
    assert handler.failures.count == 2
    assert get_buffer(config).stats().counters["agent_errors"] == 2
    [line] = [r for r in caplog.records if r.name == "sitelog.agent"]
    assert "database or disk is full" in line.getMessage()


def test_json_safe_limits_depth_and_survives_bad_str() -> None:
    class Bad:
        def __str__(self) -> str:
            raise RuntimeError

    assert json_safe(Bad()) == "<unprintable Bad>"
    assert json_safe([[[[[["deep"]]]]]]) == [[[["[['deep']]"]]]]


def test_batched_mode_builds_the_record_off_thread_with_the_values_at_log_time(tmp_path):
    """Batched mode defers building the record to the writer, but message and traceback are
    taken when logging, so later mutation of the args cannot change what is stored."""
    config = Config.model_validate({"buffer": {"path": str(tmp_path / "b.db"),
                                               "durability": "batched"}})
    handler = SitelogHandler(config=config)
    logger = logging.getLogger("test.batched")
    logger.addHandler(handler)
    args = ["Loops"]
    try:
        try:
            raise KeyError("position")
        except KeyError:
            logger.error("resume failed for %s", args, exc_info=True, extra={"course": "Python"})
        args[0] = "changed later"
    finally:
        logger.removeHandler(handler)
    handler.buffer.flush()
    [row] = [json.loads(r.data) for r in handler.buffer.read_batch(10)]
    assert row["message"] == "resume failed for ['Loops']"
    assert "KeyError: 'position'" in row["exc"] and row["extra"] == {"course": "Python"}
    assert (row["level"], row["logger"]) == ("ERROR", "test.batched")
