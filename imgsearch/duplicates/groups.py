"""What `imgsearch duplicates` reports: groups of copies, each with its original and the copies' evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..evidence import Evidence

# The row fields a group's members are described by.
ROW_FIELDS = ("path", "size", "mtime", "width", "height", "owner")


@dataclass
class Member:
    id: str
    path: str
    size: int
    mtime: float
    width: int
    height: int
    owner: str

    @classmethod
    def from_row(cls, row: dict) -> Member:
        return cls(row["id"], row["path"], int(row["size"]), float(row["mtime"]), int(row["width"]),
                   int(row["height"]), row.get("owner", ""))

    def as_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "size": self.size, "mtime": self.mtime, "width": self.width,
                "height": self.height, "owner": self.owner}


@dataclass
class Copy:
    member: Member
    similarity: float  # cosine to the original
    evidence: Evidence | None  # the verdict's, with this copy as the copy and the group's original as original

    def as_dict(self) -> dict:
        return {**self.member.as_dict(), "similarity": round(self.similarity, 4),
                "evidence": self.evidence.as_dict() if self.evidence else None}


@dataclass
class Group:
    original: Member
    copies: list[Copy]
    rule: str  # which of original.RULES decided
    reason: str  # the rule's finding, in words

    def as_dict(self) -> dict:
        return {"original": self.original.as_dict(), "copies": [c.as_dict() for c in self.copies],
                "rule": self.rule, "reason": self.reason}


@dataclass
class Report:
    groups: list[Group] = field(default_factory=list)
    rows: int = 0  # rows walked
    pairs_judged: int = 0  # candidate pairs the verdict checked while grouping
    unreadable: list[str] = field(default_factory=list)  # files the verdict could not open (judged by features)
