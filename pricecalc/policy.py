"""The policy: every *configurable* default of the SPEC, changeable without editing code.

A policy is sections of values (``[price_protection] claim_days = 7``). The built-in
defaults below follow the SPEC; plugins contribute their own sections through the
``pricecalc_policy_defaults`` hook; a TOML file overrides either. Rules read values
through a :class:`PolicyView`, which remembers every value read so the decision's audit
record carries exactly the policy it used (SPEC: "the value used must be written into the
decision's audit record").

TOML is parsed with ``parse_float=Decimal``: no policy value passes through a float.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from pricecalc.errors import PolicyError
from pricecalc.i18n import Foreign, msg

Sections = Mapping[str, Mapping[str, Any]]

#: The core's documented defaults (docs/rules.md explains each).
CORE_DEFAULTS: dict[str, dict[str, Any]] = {
    "price_protection": {
        # SPEC §3: claims accepted until event.end + claim_days.
        "claim_days": 7,
    },
    "counterfeit_compensation": {
        # SPEC §4: compensation is max(multiplier × paid, minimum) …
        "multiplier": 10,
        "minimum": "500.00",
        # … the minimum applies per "line" (default) or once per "order".
        "minimum_per": "line",
        # paid_amount excludes the platform subsidy unless this is true.
        "include_platform_subsidy": False,
        # the consumer-law standard (消费者权益保护法 第五十五条): max(3 × paid, 500).
        "consumer_law_multiplier": 3,
        "consumer_law_minimum": "500.00",
    },
    "forwarding_clawback": {
        # SPEC §5: further categories beyond the built-in list (plugins may add more).
        "extra_categories": [],
    },
    "plugins": {
        # names of plugins not to load (same as --disable-plugin).
        "disabled": [],
    },
}


def _merge(
    base: Mapping[str, Mapping[str, Any]], over: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in over.items():
        merged.setdefault(section, {}).update(values)
    return merged


@attrs.frozen
class Policy:
    """User-set policy values over the defaults. Immutable; ``source`` names the file."""

    overrides: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    defaults: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=lambda: copy.deepcopy(CORE_DEFAULTS)
    )
    source: str | None = None

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Load a policy file. Unknown sections or keys are reported once plugins are known."""
        file = Path(path)
        try:
            with file.open("rb") as fp:
                data = tomllib.load(fp, parse_float=Decimal)
        except FileNotFoundError as exc:
            raise PolicyError(msg("policy file {path!r} does not exist", path=str(file))) from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(
                msg(
                    "policy file {path!r} is not valid TOML: {problem}",
                    path=str(file),
                    problem=Foreign(str(exc)),
                )
            ) from exc
        return cls.from_mapping(data, source=str(file))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str | None = None) -> Policy:
        overrides: dict[str, dict[str, Any]] = {}
        for section, values in data.items():
            if not isinstance(values, Mapping):
                raise PolicyError(
                    msg(
                        "policy: [{section}] must be a table of values, got {value!r}",
                        section=section,
                        value=values,
                    )
                )
            overrides[section] = dict(values)
        return cls(overrides=overrides, source=source)

    def with_defaults(self, extra: Sections) -> Policy:
        """A copy whose defaults also hold ``extra`` (plugin-contributed sections)."""
        return attrs.evolve(self, defaults=_merge(self.defaults, extra))

    def merged(self, plugin_defaults: Sections) -> Policy:
        """This policy over the plugins' defaults, every key checked: what rules read.

        Merge once, where the policy and the plugins are chosen (a calculator, a script),
        and hand the result on; :func:`pricecalc.engine.evaluate_envelope` takes it as it is.
        """
        merged = self.with_defaults(plugin_defaults)
        merged.check_known()
        return merged

    def check_known(self) -> None:
        """Refuse policy keys no default declares: a misspelt key must not pass silently."""
        for section, values in self.overrides.items():
            if section not in self.defaults:
                raise PolicyError(msg("policy: unknown section [{section}]", section=section))
            for key in values:
                if key not in self.defaults[section]:
                    raise PolicyError(
                        msg("policy: unknown key {key!r} in [{section}]", key=key, section=section)
                    )

    def get(self, section: str, key: str) -> Any:
        if key in self.overrides.get(section, {}):
            return self.overrides[section][key]
        try:
            return self.defaults[section][key]
        except KeyError:
            raise PolicyError(msg("policy: no value for {key}", key=f"{section}.{key}")) from None

    def section(self, section: str) -> dict[str, Any]:
        """Every value of one section, defaults overlaid by the file."""
        return {**self.defaults.get(section, {}), **self.overrides.get(section, {})}

    def disabled_plugins(self) -> tuple[str, ...]:
        value = self.get("plugins", "disabled")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyError(
                msg(
                    "policy: {key} must be a list of names, got {value!r}",
                    key="plugins.disabled",
                    value=value,
                )
            )
        return tuple(value)

    def view(self) -> PolicyView:
        return PolicyView(self)


class PolicyView:
    """Reads policy values for one decision and remembers what was read."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self.used: dict[str, dict[str, Any]] = {}

    def get(self, section: str, key: str) -> Any:
        value = self._policy.get(section, key)
        self.used.setdefault(section, {})[key] = copy.deepcopy(value)
        return value

    def section(self, section: str) -> dict[str, Any]:
        values = self._policy.section(section)
        self.used.setdefault(section, {}).update(copy.deepcopy(values))
        return values
