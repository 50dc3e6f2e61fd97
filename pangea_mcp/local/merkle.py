"""Append-only Merkle trees with Pangea's shape, hash rule and proof formats (pangea-api.md 6.4-6.6).

A tree of n > 1 leaves splits into a left subtree of the largest power of two below n leaves and a
right subtree of the rest, so every aligned block of 2^level leaves inside the tree is a node of it
and never changes once complete ("perfect" nodes, addressed by (level, index)). A tree of size n is
the perfect nodes of the binary decomposition of n (its "peaks", largest first), folded right to
left. Storing perfect nodes is therefore enough to answer any root, membership or consistency proof
with O(log n) node reads, and an append writes O(1) nodes on average.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pangea_mcp.audit_verify import node_hash

#: Reads a perfect node: (level, index) -> digest. Level 0 is the leaves.
NodeReader = Callable[[int, int], bytes]
Node = tuple[int, int]  # (level, index)


def peaks(size: int) -> list[Node]:
    """The perfect nodes a tree of `size` leaves is made of, left (largest) to right."""
    nodes = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def fold(digests: list[bytes]) -> bytes:
    """The root over peak digests (left to right): each earlier peak is a left sibling."""
    acc = digests[-1]
    for digest in reversed(digests[:-1]):
        acc = node_hash(digest, acc)
    return acc


def root(read: NodeReader, size: int) -> bytes:
    if size < 1:
        raise ValueError("an empty tree has no root")
    return fold([read(level, index) for level, index in peaks(size)])


def path(read: NodeReader, size: int, level: int, index: int) -> list[str]:
    """Membership proof items (`l:`/`r:` hex, bottom-up) of perfect node (level, index) in the tree.

    With level 0 it is the proof of a leaf; a higher level proves a subtree root (consistency items).
    """
    tops = peaks(size)
    first = index << level
    if level < 0 or index < 0 or first + (1 << level) > size:
        raise ValueError(f"node ({level}, {index}) is not inside a tree of {size} leaves")
    holder = next(i for i, (lv, ix) in enumerate(tops) if (ix << lv) <= first < ((ix + 1) << lv))
    top_level = tops[holder][0]
    items = []
    # Inside the peak: a perfect subtree, so every sibling is a stored perfect node.
    for lv in range(level, top_level):
        ix = index >> (lv - level)
        side = "l" if ix & 1 else "r"
        items.append(f"{side}:{read(lv, ix ^ 1).hex()}")
    # Above it: the fold of the smaller peaks on the right, then each larger peak on the left.
    if holder < len(tops) - 1:
        items.append("r:" + fold([read(lv, ix) for lv, ix in tops[holder + 1 :]]).hex())
    for lv, ix in reversed(tops[:holder]):
        items.append(f"l:{read(lv, ix).hex()}")
    return items


def membership_proof(read: NodeReader, size: int, leaf: int) -> str:
    return ",".join(path(read, size, 0, leaf))


def consistency_proof(read: NodeReader, old: int, new: int) -> list[str]:
    """Pangea's format: each peak of the old tree, right-most first, with its path in the new tree."""
    if not 1 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    return [
        ",".join([f"x:{read(level, index).hex()}", *path(read, new, level, index)])
        for level, index in reversed(peaks(old))
    ]


class Frontier:
    """The peaks of a growing tree, kept in memory: appending a leaf yields the new perfect nodes."""

    def __init__(self, size: int = 0, digests: Iterable[bytes] = ()) -> None:
        self.size = size
        self._peaks: list[tuple[int, bytes]] = [
            (level, digest) for (level, _), digest in zip(peaks(size), digests, strict=True)
        ]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; returns every node completed by it, (level, index, digest), the leaf first."""
        position = self.size
        level, digest = 0, leaf
        made = [(0, position, leaf)]
        while self._peaks and self._peaks[-1][0] == level:
            _, left = self._peaks.pop()
            level, digest = level + 1, node_hash(left, digest)
            made.append((level, position >> level, digest))
        self._peaks.append((level, digest))
        self.size += 1
        return made

    def root(self) -> bytes:
        if not self._peaks:
            raise ValueError("an empty tree has no root")
        return fold([digest for _, digest in self._peaks])

    def copy(self) -> Frontier:
        twin = Frontier()
        twin.size, twin._peaks = self.size, list(self._peaks)
        return twin


def build(leaves: list[bytes]) -> tuple[bytes, dict[Node, bytes]]:
    """A whole small tree at once (a batch's "hot" tree): its root and every perfect node."""
    frontier = Frontier()
    nodes: dict[Node, bytes] = {}
    for leaf in leaves:
        for level, index, digest in frontier.append(leaf):
            nodes[level, index] = digest
    return frontier.root(), nodes
