"""The labels a ticket can get: categories, priorities and assignment groups.

Frozen values only. A taxonomy checks itself when built, and checks labels against
itself; loading one from a file is ``config.load_taxonomy``'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidLabels


@dataclasses.dataclass(frozen=True)
class Category:
    name: str
    description: str
    examples: tuple[str, ...] = ()
    assignment_group: str | None = None


@dataclasses.dataclass(frozen=True)
class Priority:
    name: str
    description: str


@dataclasses.dataclass(frozen=True)
class AssignmentGroup:
    name: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Labels:
    category: str
    priority: str
    assignment_group: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


LABEL_NAMES = ("category", "priority", "assignment_group")


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    priorities: tuple[Priority, ...]
    assignment_groups: tuple[AssignmentGroup, ...]
    default_priority: str

    def __post_init__(self) -> None:
        for kind, names in (
            ("category", self.category_names),
            ("priority", self.priority_names),
            ("assignment group", self.assignment_group_names),
        ):
            if not names:
                raise ValueError(f"the taxonomy needs at least one {kind}")
            if len(set(names)) != len(names):
                raise ValueError(f"the taxonomy repeats a {kind} name: {list(names)}")
        if self.default_priority not in self.priority_names:
            raise ValueError(f"default_priority {self.default_priority!r} is not a priority")
        for category in self.categories:
            if category.assignment_group and category.assignment_group not in self.assignment_group_names:
                raise ValueError(
                    f"category {category.name!r} routes to unknown assignment group {category.assignment_group!r}"
                )

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    @property
    def priority_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.priorities)

    @property
    def assignment_group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.assignment_groups)

    def names(self, label: str) -> tuple[str, ...]:
        """The allowed values of one label (``category``, ``priority`` or ``assignment_group``)."""
        return {
            "category": self.category_names,
            "priority": self.priority_names,
            "assignment_group": self.assignment_group_names,
        }[label]

    def category(self, name: str) -> Category:
        for category in self.categories:
            if category.name == name:
                return category
        raise InvalidLabels(f"category {name!r} is not in the taxonomy", details={"allowed": list(self.category_names)})

    def default_group_for(self, category: str) -> str:
        return self.category(category).assignment_group or self.assignment_group_names[0]

    def check(self, labels: Labels) -> Labels:
        """Return ``labels`` if every one of them is in the taxonomy, else raise InvalidLabels."""
        problems = {
            label: {"got": getattr(labels, label), "allowed": list(self.names(label))}
            for label in LABEL_NAMES
            if getattr(labels, label) not in self.names(label)
        }
        if problems:
            raise InvalidLabels("labels outside the taxonomy: " + ", ".join(sorted(problems)), details=problems)
        return labels

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        try:
            groups = tuple(
                AssignmentGroup(name=g["name"], description=g.get("description", "")) for g in data["assignment_groups"]
            )
            categories = tuple(
                Category(
                    name=c["name"],
                    description=c["description"],
                    examples=tuple(c.get("examples", ())),
                    assignment_group=c.get("assignment_group"),
                )
                for c in data["categories"]
            )
            priorities = tuple(Priority(name=p["name"], description=p["description"]) for p in data["priorities"])
            default_priority = data.get("default_priority") or priorities[len(priorities) // 2].name
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f"malformed taxonomy: missing or wrong field {error}") from error
        return cls(categories, priorities, groups, default_priority)
