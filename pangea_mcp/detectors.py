"""AI Guard detector reports, summarised without the sensitive values they carry."""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from pangea_mcp.models import PangeaResult

# -- what Pangea returns (only the parts kept; entity `value`s are never read) ---------------------
# /v1/text/guard and /v1/guard name their detectors differently (pii_entity vs
# confidential_and_pii_entity, ...) but give them the same data shapes (pangea-api.md 5.1).


class _Entity(PangeaResult):
    type: str = "unknown"
    action: str | None = None


class _Score(PangeaResult):
    category: str | None = None
    analyzer: str | None = None
    topic: str | None = None
    confidence: float | None = None


class _DetectorData(PangeaResult):
    action: str | None = None
    entities: list[_Entity | str] = Field(default_factory=list)
    classifications: list[_Score] = Field(default_factory=list)
    analyzer_responses: list[_Score] = Field(default_factory=list)
    topics: list[_Score] = Field(default_factory=list)
    language: str | None = None


class Detector(PangeaResult):
    detected: bool | None = None
    data: _DetectorData | None = None


class AccessRule(PangeaResult):
    name: str
    matched: bool
    action: str


# -- the summary a model may see -------------------------------------------------------------------


class EntityCount(PangeaResult):
    type: str = Field(description="Entity type, e.g. US_SSN, EMAIL_ADDRESS, URL, competitor")
    action: str | None = Field(default=None, description="What AI Guard did, e.g. redacted:replaced")
    count: int = Field(description="How many were found")


class Classification(PangeaResult):
    label: str = Field(description="Category, analyzer or topic that fired")
    confidence: float | None = Field(default=None, description="0 to 1")


class DetectorSummary(PangeaResult):
    detector: str = Field(description="Detector name, e.g. prompt_injection, pii_entity, secrets_detection")
    detected: bool | None = Field(default=None, description="Whether it found something")
    action: str | None = Field(default=None, description="Action it took, e.g. blocked, reported")
    entities: list[EntityCount] = Field(
        default_factory=list, description="Entity types found and how many (never the values)"
    )
    classifications: list[Classification] = Field(default_factory=list)
    language: str | None = Field(default=None, description="Language (or code language) detected")


def summarise(name: str, detector: Detector) -> DetectorSummary:
    data = detector.data or _DetectorData()
    counts: Counter[tuple[str, str | None]] = Counter()
    for entity in data.entities:
        if isinstance(entity, str):
            # Competitor names: report how many, not which.
            counts["competitor", data.action] += 1
        else:
            counts[entity.type, entity.action] += 1
    scores = [*data.classifications, *data.analyzer_responses, *data.topics]
    return DetectorSummary(
        detector=name,
        detected=detector.detected,
        action=data.action,
        entities=[EntityCount(type=t, action=a, count=n) for (t, a), n in counts.items()],
        classifications=[
            Classification(label=s.category or s.analyzer or s.topic or "unknown", confidence=s.confidence)
            for s in scores
        ],
        language=data.language,
    )


def findings(detectors: dict[str, Detector], rules: dict[str, AccessRule] | None = None) -> str:
    """One line naming what fired: detectors, entity types and counts, labels, blocking access rules.

    Built only from names, types, actions and scores, so it never repeats the text that was detected.
    """
    parts = []
    for name, detector in detectors.items():
        summary = summarise(name, detector)
        fired = summary.detected or summary.entities or (summary.action or "").startswith("block")
        if not fired:
            continue
        details = [f"{e.type} x{e.count}" + (f" ({e.action})" if e.action else "") for e in summary.entities]
        details += [
            c.label + (f" {c.confidence:.2f}" if c.confidence is not None else "")
            for c in summary.classifications
        ]
        if summary.action and not summary.entities:
            details.append(summary.action)
        parts.append(name + (f" [{', '.join(details)}]" if details else ""))
    for rule in (rules or {}).values():
        if rule.matched and rule.action == "blocked":
            parts.append(f"access rule {rule.name} [blocked]")
    return "; ".join(parts) or "no detector named a reason"
