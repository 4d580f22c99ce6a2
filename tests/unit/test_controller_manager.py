"""The controller manager's choice of controllers and settings (runtime/controllers/
manager.py): what ``--controllers`` and ``--controller-option`` accept and refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.controllers.manager import (
    CONTROLLERS,
    ControllerContext,
    ControllerError,
    built,
    enabled_controllers,
    parse_settings,
)


def test_none_and_empty_enable_no_controller() -> None:
    assert enabled_controllers("none") == [] and enabled_controllers("") == []


def test_star_enables_every_built_controller_in_registry_order() -> None:
    every = enabled_controllers("*")
    assert every == [name for name in CONTROLLERS if built(name)]


def test_a_minus_entry_removes_one_controller_from_star() -> None:
    every = enabled_controllers("*")
    if not every:
        pytest.fail("no controller is built")
    assert enabled_controllers(f"*,-{every[0]}") == every[1:]


def test_unknown_controllers_are_refused_with_the_list_of_names() -> None:
    with pytest.raises(ControllerError, match=r"no controller 'nope'.*deployment"):
        enabled_controllers("nope")
    with pytest.raises(ControllerError, match="no controller 'nope'"):
        enabled_controllers("*,-nope")


def test_settings_need_a_known_controller_a_key_and_a_value() -> None:
    assert parse_settings(["job.backoff-base=1", "job.x=a=b"]) == {
        "job.backoff-base": "1",
        "job.x": "a=b",
    }
    for bad in ("job", "job=1", "nope.key=1"):
        with pytest.raises(ControllerError):
            parse_settings([bad])


def test_a_setting_takes_the_type_of_its_default_and_bad_values_are_refused() -> None:
    ctx = ControllerContext(
        client=None,  # type: ignore[arg-type]
        informers=None,  # type: ignore[arg-type]
        state_dir=Path("/nonexistent"),
        settings={"hpa.period": "2.5", "job.workers": "3", "job.on": "true", "job.bad": "x"},
    )
    assert ctx.setting("hpa.period", 15.0) == 2.5
    assert ctx.setting("job.workers", 5) == 3
    assert ctx.setting("job.on", False) is True
    assert ctx.setting("job.missing", "d") == "d"
    with pytest.raises(ControllerError, match=r"job\.bad=x: expected a int"):
        ctx.setting("job.bad", 1)
