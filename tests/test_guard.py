"""The one guard around plugin calls (issue 20 point 4): a plugin's unexpected exception
becomes a PluginError naming it, the message built only on failure."""

from __future__ import annotations

from typing import Any

import pytest

from audit.errors import AuditError
from pricecalc.errors import InvalidInput, PluginError, guard


class CountedTemplate(str):
    """A template that counts how often it is formatted."""

    formatted = 0

    def format(self, *args: Any, **kwargs: Any) -> str:
        type(self).formatted += 1
        return super().format(*args, **kwargs)


def test_a_guarded_call_that_succeeds_formats_nothing() -> None:
    """Issue 20 point 4: the message is built lazily — a thousand successful calls format
    no message; the one failure formats it once, naming the plugin and the error."""
    what = CountedTemplate("offer {!r} (input.offers[{}]) {} failed: {error}")
    for index in range(1000):
        with guard("club", what, "member_price", index, "discount()"):
            pass
    assert CountedTemplate.formatted == 0
    with (
        pytest.raises(
            PluginError,
            match=r"^plugin 'club': offer 'member_price' \(input\.offers\[7\]\) discount\(\) "
            r"failed: ZeroDivisionError: division by zero$",
        ) as caught,
        guard("club", what, "member_price", 7, "discount()"),
    ):
        1 / 0  # noqa: B018
    assert CountedTemplate.formatted == 1
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    "error",
    [InvalidInput("input.x", "y", "must be z"), AuditError("the store is locked")],
    ids=["pricecalc", "audit"],
)
def test_pricecalc_and_store_errors_pass_through(error: Exception) -> None:
    """A pricecalc error (the caller's) or an audit store error (the store's) is not the
    plugin's fault: it passes through unchanged — unless ``passing=()`` (hooks run while
    plugins load, where any exception is the plugin's)."""
    with pytest.raises(type(error), match=str(error)[:8]), guard("club", "{} raised {error}", "x"):
        raise error
    with (
        pytest.raises(
            PluginError, match=rf"^plugin 'club': pricecalc_rules raised {type(error).__name__}: "
        ),
        guard("club", "{} raised {error}", "pricecalc_rules", passing=()),
    ):
        raise error


def test_base_exceptions_are_not_wrapped() -> None:
    """A KeyboardInterrupt inside a plugin call stays a KeyboardInterrupt."""
    with pytest.raises(KeyboardInterrupt), guard("club", "{} raised {error}", "x"):
        raise KeyboardInterrupt
