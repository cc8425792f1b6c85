"""The plugin manager: built-in rules and entry-point plugins, loaded when asked.

Nothing is loaded at import time. :func:`get_plugin_manager` registers the built-in
plugin (the core's own rules, through the same hooks a stranger uses), loads the
``pricecalc`` entry-point group, blocks disabled plugins and runs ``check_pending`` so a
misspelt hook fails loudly. :func:`load_registry` then asks every plugin for its
contributions, one implementation at a time, so each item is attributed to its plugin and
a plugin that raises or returns garbage is named in the error.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

import pluggy

from pricecalc import builtin, hookspecs
from pricecalc.errors import PluginError, PolicyError, PricecalcError, guard
from pricecalc.i18n import N_, msg
from pricecalc.offers import OfferType
from pricecalc.policy import CORE_DEFAULTS, Policy
from pricecalc.registry import CompensationStandard, Contributed, Registry, Rule

ENTRY_POINT_GROUP = "pricecalc"
BUILTIN = "builtin"


@functools.cache
def core_version() -> str:
    """The installed distribution's version (read once: the metadata lookup parses files)."""
    try:
        return metadata.version("chaozhigou-pricecalc")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def get_plugin_manager(
    disable: Iterable[str] = (),
    *,
    entry_points: bool = True,
    extra: Iterable[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-in plugin and (by default) entry points.

    ``disable`` names plugins not to load (the built-in one included, if you must).
    ``extra`` registers plugin objects directly (tests, embedding applications).
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disable:
        pm.set_blocked(name)
    if not pm.is_blocked(BUILTIN):
        pm.register(builtin, name=BUILTIN)
    if entry_points:
        # Import each (not disabled) entry point first, so one that fails to import is
        # named; pluggy's loader below then finds the modules already imported.
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.is_blocked(entry_point.name):
                continue
            try:
                entry_point.load()
            except Exception as exc:
                raise PluginError(
                    entry_point.name,
                    msg(
                        "failed to load ({entry_point}): {error}",
                        entry_point=entry_point.value,
                        error=f"{type(exc).__name__}: {exc}",
                    ),
                ) from exc
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # an entry point that fails to import
            raise PluginError(
                "entry points", msg("failed to load: {error}", error=str(exc))
            ) from exc
    for name, plugin in extra:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(getattr(exc, "plugin", "unknown"), str(exc)) from exc
    return pm


def _plugin_versions(pm: pluggy.PluginManager) -> dict[str, str]:
    """Versions of the plugins loaded; a blocked (disabled) name is registered as None."""
    versions = {} if pm.is_blocked(BUILTIN) else {BUILTIN: core_version()}
    for plugin, dist in pm.list_plugin_distinfo():
        name = pm.get_name(plugin)
        if name is not None:
            versions[name] = str(dist.version)
    for name, plugin in pm.list_name_plugin():
        if plugin is not None:
            versions.setdefault(name, "0+unversioned")
    return versions


def _collect(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, Any]]:
    """Call each implementation of a contribution hook alone; name the plugin on failure."""
    out: list[tuple[str, Any]] = []
    caller = getattr(pm.hook, hook_name)
    # get_hookimpls() lists implementations in registration order (pluggy *calls* them
    # last-registered first); we want registration order so
    # the built-in (platform) contributions come first and win ties.
    for impl in caller.get_hookimpls():
        with guard(impl.plugin_name, "{} raised {error}", hook_name, passing=()):
            value = impl.function()
        if value is None:
            continue
        out.append((impl.plugin_name, value))
    return out


def _items(plugin: str, hook: str, value: Any, kind: type | tuple[type, ...]) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise PluginError(
            plugin,
            msg("{hook} must return a list, got {type}", hook=hook, type=type(value).__name__),
        )
    items = list(value)
    for item in items:
        if not isinstance(item, kind):
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise PluginError(
                plugin,
                msg("{hook} returned {item!r}, expected {expected}", hook=hook, item=item,
                    expected=expected),
            )  # fmt: skip
    return items


def _by_name(
    pm: pluggy.PluginManager,
    hook: str,
    kind: type,
    name_of: Callable[[Any], str],
    twice: str,
) -> dict[str, Contributed]:
    """Every plugin's answer to ``hook``, checked to be ``kind``, by name, in order; a
    name contributed twice is a :class:`PluginError` saying ``twice`` (a marked template
    of ``{name}``/``{kind}`` and ``{other}``: ``registers kind 'x', already registered by
    'p'``)."""
    found: dict[str, Contributed] = {}
    for plugin, value in _collect(pm, hook):
        for item in _items(plugin, hook, value, kind):
            name = name_of(item)
            if name in found:
                raise PluginError(
                    plugin, msg(twice, name=name, kind=name, other=found[name].plugin)
                )
            found[name] = Contributed(plugin, item)
    return found


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Ask every plugin for its contributions and check them."""
    rules = _by_name(
        pm, "pricecalc_rules", Rule, lambda rule: rule.kind,
        N_("registers kind {kind!r}, already registered by {other!r}"),
    )  # fmt: skip
    standards = _by_name(
        pm, "pricecalc_compensation_standards", CompensationStandard,
        lambda standard: standard.name, N_("adds standard {name!r}, already added by {other!r}"),
    )  # fmt: skip
    offer_types = _by_name(
        pm, "pricecalc_offer_types", OfferType, lambda offer: offer.name,
        N_("adds offer type {name!r}, already added by {other!r}"),
    )  # fmt: skip

    categories: dict[str, str] = {}
    for plugin, value in _collect(pm, "pricecalc_clawback_categories"):
        for category in _items(plugin, "pricecalc_clawback_categories", value, str):
            categories.setdefault(category, plugin)

    defaults: dict[str, dict[str, Any]] = {k: dict(v) for k, v in CORE_DEFAULTS.items()}
    for plugin, value in _collect(pm, "pricecalc_policy_defaults"):
        if not isinstance(value, Mapping) or not all(
            isinstance(v, Mapping) for v in value.values()
        ):
            raise PluginError(
                plugin, msg("pricecalc_policy_defaults must return {section: {key: value}}")
            )
        for section, values in value.items():
            target = defaults.setdefault(str(section), {})
            for key, default in values.items():
                if key in target and section not in CORE_DEFAULTS:
                    raise PluginError(
                        plugin,
                        msg("policy default {key} is already declared", key=f"{section}.{key}"),
                    )
                target.setdefault(str(key), default)

    hooks_by_plugin: dict[str, tuple[str, ...]] = {}
    for name, plugin_obj in pm.list_name_plugin():
        if plugin_obj is None:  # blocked: disabled by name
            continue
        callers = pm.get_hookcallers(plugin_obj) or []
        hooks_by_plugin[name] = tuple(sorted(c.name for c in callers))

    return Registry(
        rules=rules,
        standards=tuple(standards.values()),
        offer_types=offer_types,
        clawback_categories=categories,
        policy_defaults=defaults,
        plugin_versions=_plugin_versions(pm),
        hooks_by_plugin=hooks_by_plugin,
    )


def plugin_names(asked: Iterable[str] = ()) -> list[str]:
    """The plugins a disable list (``--disable-plugin``, the policy's ``[plugins]
    disabled``) may name: ``builtin`` and the installed entry points (read without
    importing them, so a plugin that fails to load can be disabled), and — only when
    ``asked`` names another — whatever else the plugin manager registers (an embedding
    application's plugins)."""
    names = {BUILTIN, *(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))}
    if not set(asked) <= names:
        try:
            pm = get_plugin_manager(())
        except PricecalcError:
            pass
        else:
            names.update(name for name, plugin in pm.list_name_plugin() if plugin is not None)
    return sorted(names)


def load_registry(policy: Policy | None = None, disable: Iterable[str] = ()) -> Registry:
    """Build a registry from the installed plugins, minus those disabled by name or policy."""
    names = set(disable)
    if policy is not None:
        from_policy = policy.disabled_plugins()
        if from_policy:
            known = plugin_names(from_policy)
            unknown = [name for name in from_policy if name not in known]
            if unknown:  # a misspelt name must not silently leave the plugin on
                raise PolicyError(
                    msg(
                        "policy: plugins.disabled names {name!r}, which is not a plugin "
                        "pricecalc has (plugins: {known})",
                        name=unknown[0],
                        known=", ".join(known),
                    )
                )
        names.update(from_policy)
    return build_registry(get_plugin_manager(sorted(names)))


_default_lock = threading.Lock()
_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of all installed plugins, built on first use and then shared."""
    global _default
    with _default_lock:
        if _default is None:
            _default = load_registry()
        return _default
