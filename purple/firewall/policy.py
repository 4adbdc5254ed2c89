"""A firewall policy: which detectors look at which message roles, their thresholds, the time budget and the
fail mode. Policies are built in Python or loaded from YAML; a bad YAML file is a PolicyError naming its line.

```yaml
name: support-bot
budget_ms: 1000          # per message, all detectors together
on_error: closed         # a detector that fails or runs out of time blocks (closed) or allows (open)
on_block: raise          # wrappers raise FirewallBlocked (raise) or answer with `refusal` (refuse)
detectors:               # optional settings per detector; a name not listed here uses the registry's defaults
  injection: {review_at: 0.5, block_at: 0.9}
  code_shield: {semgrep: false}
  words:                 # a second regex detector under its own name
    use: regex
    patterns:
      - {name: codename, pattern: '(?i)project\\s+falcon', score: 1.0}
roles:
  user: [injection, hidden_unicode, secrets, words]
  assistant: [code_shield, hidden_unicode, secrets, pii]
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from purple.firewall.registry import DETECTORS
from purple.types import ROLES, Decision, Detector, Role

FailMode = Literal["open", "closed"]
BlockAction = Literal["raise", "refuse"]

MAX_POLICY_BYTES = 1_000_000
DEFAULT_REFUSAL = "I can't help with that: a safety policy blocked this request."
_DETECTOR_KEYS = ("use", "review_at", "block_at", "on_error")


class PolicyError(ValueError):
    """A policy that cannot be used. Raised from YAML, the message starts with `FILE:LINE:`.

    `field` names the offending setting while the error travels up, so the loader can point at its line.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def decide(score: float, review_at: float | None, block_at: float | None) -> Decision:
    """The decision a score earns: block at or above `block_at`, review at or above `review_at`."""
    if block_at is not None and score >= block_at:
        return Decision.BLOCK
    if review_at is not None and score >= review_at:
        return Decision.HUMAN_REVIEW
    return Decision.ALLOW


@dataclass(frozen=True)
class DetectorPolicy:
    """How one detector runs.

    `use` is a registry name (see `purple.firewall.registry.DETECTORS`) or a ready Detector (Python policies).
    `options` go to the registry's builder. When `review_at` or `block_at` is given, the decision comes from the
    verdict's score and these thresholds; when both are left out, the detector's own decision stands.
    `on_error` overrides the policy's fail mode for this detector. `where` is the policy line it came from.
    """

    use: str | Detector
    options: Mapping[str, Any] = field(default_factory=dict)
    review_at: float | None = None
    block_at: float | None = None
    on_error: FailMode | None = None
    where: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.use, str):
            entry = DETECTORS.get(self.use)
            if entry is None:
                raise PolicyError(
                    f"unknown detector {self.use!r}; known: {', '.join(sorted(DETECTORS))}", field="use"
                )
            for option in self.options:
                if option not in entry.options:
                    known = ", ".join(sorted(entry.options)) or "none"
                    raise PolicyError(f"{self.use} has no option {option!r} (options: {known})", field=option)
        elif not isinstance(self.use, Detector):
            raise PolicyError(
                f"`use` must be a registry name or a Detector, got {type(self.use).__name__}", "use"
            )
        elif self.options:
            raise PolicyError(
                "options apply to registry detectors only; configure a Detector object directly", "use"
            )
        for name in ("review_at", "block_at"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0
            ):
                raise PolicyError(f"{name} must be a number in [0, 1], got {value!r}", field=name)
        if self.review_at is not None and self.block_at is not None and self.review_at > self.block_at:
            raise PolicyError(
                f"review_at ({self.review_at}) must not be above block_at ({self.block_at})",
                field="review_at",
            )
        if self.on_error not in (None, "open", "closed"):
            raise PolicyError(f"on_error must be 'open' or 'closed', got {self.on_error!r}", field="on_error")

    @property
    def thresholds(self) -> bool:
        return self.review_at is not None or self.block_at is not None


@dataclass(frozen=True)
class Policy:
    """Role -> detector names, the settings of each detector, and how the whole scan behaves.

    `detectors` maps a name used in `roles` to its settings (a DetectorPolicy, or a bare Detector); a name used in
    `roles` but not defined there is a registry detector with default settings. `budget_ms` bounds one message's
    scan; `on_error` says what a detector that raises, reports an error, or runs past the budget means;
    `stop_on_block` stops waiting for the other detectors once one blocks. `on_block` and `refusal` tell the
    wrappers and the proxy what to do with a block; `stream_window` is how many characters of streamed output are
    held back and checked at a time; a message longer than `max_chars` counts as a detector error (never scanned
    in part, so padding cannot push a payload out of view).
    """

    roles: Mapping[Role, Sequence[str]]
    detectors: Mapping[str, DetectorPolicy | Detector] = field(default_factory=dict)
    name: str = "custom"
    budget_ms: float = 1000.0
    on_error: FailMode = "closed"
    stop_on_block: bool = True
    on_block: BlockAction = "raise"
    refusal: str = DEFAULT_REFUSAL
    stream_window: int = 512
    max_chars: int = 200_000

    def __post_init__(self) -> None:
        detectors = {
            name: value if isinstance(value, DetectorPolicy) else DetectorPolicy(use=value)
            for name, value in self.detectors.items()
        }
        object.__setattr__(self, "detectors", detectors)
        roles: dict[Role, tuple[str, ...]] = {}
        for role, names in self.roles.items():
            if role not in ROLES:
                raise PolicyError(f"unknown role {role!r}; roles are {', '.join(ROLES)}", field="roles")
            if (
                isinstance(names, str)
                or not isinstance(names, Sequence)
                or not all(isinstance(n, str) for n in names)
            ):
                raise PolicyError(f"roles.{role} must be a list of detector names", field="roles")
            for name in names:
                check_reference(name, detectors)
            roles[role] = tuple(dict.fromkeys(names))
        object.__setattr__(self, "roles", roles)
        if not isinstance(self.name, str) or not self.name.strip():
            raise PolicyError(f"name must be non-empty text, got {self.name!r}", field="name")
        if isinstance(self.budget_ms, bool) or not isinstance(self.budget_ms, int | float):
            raise PolicyError(f"budget_ms must be a number, got {self.budget_ms!r}", field="budget_ms")
        if not 0 < self.budget_ms <= 600_000:
            raise PolicyError(f"budget_ms must be in (0, 600000], got {self.budget_ms}", field="budget_ms")
        if self.on_error not in ("open", "closed"):
            raise PolicyError(f"on_error must be 'open' or 'closed', got {self.on_error!r}", field="on_error")
        if self.on_block not in ("raise", "refuse"):
            raise PolicyError(
                f"on_block must be 'raise' or 'refuse', got {self.on_block!r}", field="on_block"
            )
        if not isinstance(self.stop_on_block, bool):
            raise PolicyError(
                f"stop_on_block must be true or false, got {self.stop_on_block!r}", "stop_on_block"
            )
        if not isinstance(self.refusal, str) or not self.refusal.strip():
            raise PolicyError("refusal must be non-empty text", field="refusal")
        for name, low in (("stream_window", 16), ("max_chars", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PolicyError(f"{name} must be a whole number >= {low}, got {value!r}", field=name)

    def detector(self, name: str) -> DetectorPolicy:
        """The settings of detector `name`: as defined, else the registry detector of that name with defaults."""
        found = self.detectors.get(name)
        return found if isinstance(found, DetectorPolicy) else DetectorPolicy(use=name)

    def used(self) -> list[str]:
        """Every detector name some role uses, in order of first use."""
        return list(dict.fromkeys(name for names in self.roles.values() for name in names))


def check_reference(name: str, detectors: Mapping[str, Any]) -> None:
    """A name in `roles` must be defined under `detectors` or be a registry detector."""
    if name not in detectors and name not in DETECTORS:
        raise PolicyError(
            f"detector {name!r} is neither defined under `detectors` nor a registry detector "
            f"({', '.join(sorted(DETECTORS))})",
            field=name,
        )


# ------------------------------------------------------------------------------------------------ loading
def load_policy(source: str | Path) -> Policy:
    """A preset by name (`chatbot`, `coding`, `agent`) or a YAML policy file. Raises PolicyError naming the line."""
    from purple.firewall.presets import PRESETS, preset

    if isinstance(source, str) and source in PRESETS:
        return preset(source)
    path = Path(source)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        known = ", ".join(PRESETS)
        raise PolicyError(f"{path}: no such policy file (presets: {known})") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy ({exc.strerror})") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: policy file larger than {MAX_POLICY_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    return policy_from_yaml(text, str(path))


def policy_from_yaml(text: str, source: str = "<policy>") -> Policy:
    """Parse a YAML policy; `source` is the name errors start with."""
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except PolicyError as exc:
        raise PolicyError(f"{source}:{exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PolicyError(f"{source}:{line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, _Map):
        raise PolicyError(f"{source}:1: a policy is a mapping with `roles` (and optionally `detectors`, ...)")
    return _read_policy(data, source)


_TOP_KEYS = {f.name for f in fields(Policy)}


def _read_policy(data: _Map, source: str) -> Policy:
    def at(mapping: _Map | _List, key: Any) -> str:
        return f"{source}:{mapping.lines.get(key, mapping.line)}"

    for key in data:
        if key not in _TOP_KEYS:
            raise PolicyError(
                f"{at(data, key)}: unknown key {key!r}; expected one of {', '.join(sorted(_TOP_KEYS))}"
            )
    if "roles" not in data:
        raise PolicyError(f"{source}:{data.line}: the policy has no `roles` (role -> list of detector names)")

    detectors: dict[str, DetectorPolicy] = {}
    raw_detectors = data.get("detectors") or _Map()
    if not isinstance(raw_detectors, _Map):
        raise PolicyError(f"{at(data, 'detectors')}: `detectors` must be a mapping of name -> settings")
    for name, settings in raw_detectors.items():
        settings = _Map() if settings is None else settings
        if not isinstance(settings, _Map):
            raise PolicyError(f"{at(raw_detectors, name)}: detectors.{name} must be a mapping of settings")
        options = {k: _plain(v) for k, v in settings.items() if k not in _DETECTOR_KEYS}
        where = at(raw_detectors, name)
        try:
            detectors[name] = DetectorPolicy(
                use=settings.get("use", name),
                options=options,
                review_at=settings.get("review_at"),
                block_at=settings.get("block_at"),
                on_error=settings.get("on_error"),
                where=where,
            )
        except PolicyError as exc:
            line_of = at(settings, exc.field) if exc.field in settings else where
            raise PolicyError(f"{line_of}: detectors.{name}: {exc}") from None

    roles = data["roles"]
    if not isinstance(roles, _Map):
        raise PolicyError(f"{at(data, 'roles')}: `roles` must be a mapping of role -> list of detector names")
    for role, names in roles.items():
        if role not in ROLES:
            raise PolicyError(f"{at(roles, role)}: unknown role {role!r}; roles are {', '.join(ROLES)}")
        if names is None:
            roles[role] = names = _List()
        if not isinstance(names, _List) or not all(isinstance(n, str) for n in names):
            raise PolicyError(f"{at(roles, role)}: roles.{role} must be a list of detector names")
        for index, name in enumerate(names):
            try:
                check_reference(name, detectors)
            except PolicyError as exc:
                raise PolicyError(f"{at(names, index)}: roles.{role}: {exc}") from None

    settings = {k: _plain(v) for k, v in data.items() if k not in ("detectors", "roles")}
    try:
        return Policy(roles={r: list(n) for r, n in roles.items()}, detectors=detectors, **settings)
    except PolicyError as exc:
        raise PolicyError(f"{at(data, exc.field)}: {exc}") from None


# ----------------------------------------------------------------------------------- YAML with line numbers
class _Map(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its own line and the line of each key."""

    line: int = 1
    lines: dict[Any, int]


class _List(list):  # type: ignore[type-arg]
    """A YAML sequence that remembers its own line and the line of each item."""

    line: int = 1
    lines: dict[Any, int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers and refuses aliases (no billion-laughs expansion)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise PolicyError(
                f"{event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in a policy"
            )
        return super().compose_node(parent, index)


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    out = _Map()
    out.line, out.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise PolicyError(f"{line}: keys must be text, got {key!r}")
        if key in out:
            raise PolicyError(f"{line}: duplicate key {key!r} (first on line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_list(loader: _LineLoader, node: yaml.SequenceNode) -> _List:
    out = _List()
    out.line, out.lines = node.start_mark.line + 1, {}
    for index, item in enumerate(node.value):
        out.append(loader.construct_object(item, deep=True))
        out.lines[index] = item.start_mark.line + 1
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_list)


def _plain(value: Any) -> Any:
    """Plain dicts and lists for options handed to detector builders."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
