"""metadata.version (KRaft mode), pure: the value a user asks for (``kafka.metadataVersion``),
when preflight refuses it, and which UpdateFeatures step the post-upgrade hook takes.

The rules: the level rises only when asked for, only after every node runs a Kafka that
supports it (preflight refuses the upgrade that asks for it earlier; roll to the new Kafka
first, then ask), and a lower level only as a downgrade Kafka itself accepts (asked with
UpdateFeatures' validate_only, whose refusal preflight passes on).
"""

from __future__ import annotations

from .model import Features

# Feature levels of metadata.version, from Kafka 4.4.0's MetadataVersion enum (its featureLevel
# and version string). 3.3-IV3 is the oldest a Kafka 4 node accepts; 4.5-IV0 is not a production
# level in 4.4.0 (no 4.4 node supports it unless its unstable versions are enabled).
LEVELS: dict[str, int] = {
    "3.3-IV3": 7,
    "3.4-IV0": 8,
    "3.5-IV0": 9,
    "3.5-IV1": 10,
    "3.5-IV2": 11,
    "3.6-IV0": 12,
    "3.6-IV1": 13,
    "3.6-IV2": 14,
    "3.7-IV0": 15,
    "3.7-IV1": 16,
    "3.7-IV2": 17,
    "3.7-IV3": 18,
    "3.7-IV4": 19,
    "3.8-IV0": 20,
    "3.9-IV0": 21,
    "4.0-IV0": 22,
    "4.0-IV1": 23,
    "4.0-IV2": 24,
    "4.0-IV3": 25,
    "4.1-IV0": 26,
    "4.1-IV1": 27,
    "4.2-IV0": 28,
    "4.2-IV1": 29,
    "4.3-IV0": 30,
    "4.4-IV0": 31,
    "4.4-IV1": 32,
    "4.4-IV2": 33,
    "4.5-IV0": 34,
}
NAMES = {level: name for name, level in LEVELS.items()}


def describe(level: int | None) -> str:
    if level is None:
        return "none"
    return f"{level} ({NAMES[level]})" if level in NAMES else str(level)


def resolve(value: str | None) -> int | None:
    """The feature level a value names: empty (None: leave metadata.version alone), a feature
    level (``33``), a version (``4.4-IV2``) or a release (``4.4`` or ``4.4.0``: its latest
    version, as kafka-storage's --release-version reads it)."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    if text in LEVELS:
        return LEVELS[text]
    parts = text.split(".")
    if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
        release = f"{parts[0]}.{parts[1]}-IV"
        levels = [level for name, level in LEVELS.items() if name.startswith(release)]
        if levels:
            return max(levels)
    raise ValueError(
        f"metadata.version {text!r} is not a feature level, a version like 4.4-IV2 or a "
        f"release like 4.4 (known: {min(LEVELS)} to {max(LEVELS)})"
    )


def step(wanted: int | None, finalized: int | None) -> str | None:
    """'upgrade', 'downgrade' or None (nothing asked, or already there)."""
    if wanted is None or finalized is None or wanted == finalized:
        return None
    return "upgrade" if wanted > finalized else "downgrade"


def problems(wanted: int | None, features: Features, kafka_refusal: str | None = None) -> list[str]:
    """Why metadata.version may not be moved to ``wanted`` now; empty when it may (or when
    nothing is asked). ``kafka_refusal``: the controller's answer to a validate-only
    UpdateFeatures of the same step, None when it accepted or was not asked."""
    if wanted is None:
        return []
    if features.finalized is None:
        return ["metadata.version is not finalized: it can only be set on a KRaft cluster"]
    todo = step(wanted, features.finalized)
    if todo is None:
        return []
    out = []
    if todo == "upgrade":
        unable = sorted(n for n, (_, top) in features.supported.items() if top < wanted)
        if unable:
            tops = sorted({features.supported[n][1] for n in unable})
            out.append(
                f"metadata.version {describe(wanted)} is not supported by brokers {unable} "
                f"(they support up to {', '.join(describe(t) for t in tops)}): roll every "
                f"node to a Kafka version that supports it first, then raise it"
            )
    if kafka_refusal:
        verb = "raising" if todo == "upgrade" else "lowering"
        out.append(
            f"Kafka refuses {verb} metadata.version from {describe(features.finalized)} to "
            f"{describe(wanted)}: {kafka_refusal}"
        )
    return out
