"""status and flush: newest error first, next attempt per pending delivery, dead letters by id."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from tests.conftest import Result, WriteConfig, mail_channel
from tests.smtp_server import SMTPServer

Cli = Callable[..., Result]


def status(cli: Cli, cfg: Path) -> dict[str, Any]:
    """`ha-notify status --json` as a dict."""
    result = cli("status", "--json", "-c", cfg)
    assert result.code == 0, result.err
    parsed: dict[str, Any] = json.loads(result.out)
    return parsed


def bury(cli: Cli, smtp: SMTPServer, cfg: Path, states: list[str]) -> list[str]:
    """One dead letter per state, each refused with its own 550 text; their errors in order."""
    errors = []
    for i, state in enumerate(states):
        error = f"550 5.7.1 refused number {i}"
        smtp.recorder.mail_answers.append(error)
        assert cli(state, "-c", cfg).code == 1
        errors.append(error)
    return errors


def test_dead_letters_are_listed_newest_first_with_ids(
    smtp: SMTPServer, write_config: WriteConfig, cli: Cli
) -> None:
    """status and --list-dead show every dead letter by id, the newest error first."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    errors = bury(cli, smtp, cfg, ["master", "backup", "fault", "master", "backup"])
    report = status(cli, cfg)
    assert report["dead"] == 5
    assert [d["last_error"][-len(errors[0]) :] for d in report["dead_letters"]] == errors[::-1]
    assert report["dead_last_error"].endswith(errors[-1])
    text = cli("status", "-c", cfg).out
    ids = [d["id"] for d in report["dead_letters"]]
    assert all(i in text for i in ids)
    assert text.index(ids[0]) < text.index(ids[-1])
    listed = cli("flush", "--list-dead", "-c", cfg)
    assert listed.code == 0 and [line.split()[0] for line in listed.out.splitlines()] == ids
    assert smtp.messages == []  # listing sends nothing


def test_drop_dead_forgets_one_and_keeps_the_sequence(
    smtp: SMTPServer, write_config: WriteConfig, cli: Cli
) -> None:
    """--drop-dead PREFIX forgets that one; the next event does not reuse its number."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    bury(cli, smtp, cfg, ["master", "backup"])
    newest, oldest = status(cli, cfg)["dead_letters"]
    dropped = cli("flush", "--drop-dead", newest["id"][:6], "-c", cfg)
    assert dropped.code == 0 and newest["id"] in dropped.out
    report = status(cli, cfg)
    assert [d["id"] for d in report["dead_letters"]] == [oldest["id"]]
    assert cli("flush", "--retry-dead", "-c", cfg).code == 0  # the dropped one is not resent
    assert [m.message["Subject"] for m in smtp.messages] == [smtp.messages[0].message["Subject"]]
    assert "BACKUP" not in smtp.messages[0].message["Subject"]
    assert cli("fault", "-c", cfg).code == 0
    body = smtp.messages[-1].message.get_body(("plain",))
    assert body is not None
    seq = re.search(r"Sequence:\s+(\d+)", body.get_content())
    assert seq is not None and int(seq.group(1)) > newest["seq"]


def test_unknown_and_ambiguous_ids_are_one_line_errors(
    smtp: SMTPServer, write_config: WriteConfig, cli: Cli
) -> None:
    """An id that matches nothing, or two dead letters, is exit 2 with a one-line fix."""
    cfg = write_config({"mail": mail_channel(smtp.port), "mail2": mail_channel(smtp.port)})
    smtp.recorder.mail_answers += ["550 5.7.1 no", "550 5.7.1 no"]
    assert cli("master", "-c", cfg).code == 1
    first, _second = status(cli, cfg)["dead_letters"]
    event = first["id"].split(":")[0]
    missing = cli("flush", "--drop-dead", "ffffffffffffz", "-c", cfg)
    assert missing.code == 2 and "no dead letter has the id" in missing.err
    assert len(missing.err.strip().splitlines()) == 1
    both = cli("flush", "--retry-dead", event, "-c", cfg)
    assert both.code == 2 and "names 2 dead letters" in both.err
    one = cli("flush", "--retry-dead", f"{event}:mail2", "-c", cfg)
    assert one.code == 0 and f"retrying {event}:mail2" in one.out
    assert [d["channel"] for d in status(cli, cfg)["dead_letters"]] == ["mail"]
    assert len(smtp.messages) == 1


def test_retry_dead_without_id_says_how_many_and_how_old(
    smtp: SMTPServer, write_config: WriteConfig, cli: Cli
) -> None:
    """--retry-dead alone moves every dead letter back and says how many and how old."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    bury(cli, smtp, cfg, ["master", "backup"])
    result = cli("flush", "--retry-dead", "-c", cfg)
    assert result.code == 0 and "retrying 2 dead letter(s), given up between" in result.out
    assert "sent 2, still pending 0" in result.out and status(cli, cfg)["dead"] == 0


def test_pending_deliveries_say_when_they_are_tried_next(
    smtp: SMTPServer, write_config: WriteConfig, cli: Cli
) -> None:
    """A 4xx leaves the delivery pending; status and flush --due give its next attempt time."""
    cfg = write_config({"mail": mail_channel(smtp.port)})
    smtp.recorder.mail_answers.append("451 4.3.0 relay busy")
    assert cli("master", "-c", cfg).code == 0
    (item,) = status(cli, cfg)["deliveries"]
    assert item["next"].startswith("at ") and "(in " in item["next"]
    assert item["last_error"].endswith("451 4.3.0 relay busy") and item["attempts"] == 1
    assert f"{item['id']} (INSTANCE:" in cli("status", "-c", cfg).out
    due = cli("flush", "--due", "-c", cfg)
    assert "sent 0, still pending 1" in due.out
    assert f"pending {item['id']}: next attempt at " in due.out
    assert smtp.messages == []
