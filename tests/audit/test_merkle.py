"""The Merkle tree, inclusion and consistency proofs of RFC 9162 §2.1 (SPEC §9).

Known answers are the RFC 6962 / Certificate Transparency test vectors (eight leaves);
the rest compares ``audit.merkle`` with a naive implementation written straight from the
RFC's recursive definitions, on every tree size from 1 to 70, and throws forged and
mangled proofs at the verifiers (in the spirit of CVE-2022-36111, where immudb's verifier
accepted a proof it should have refused).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings, strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    CompactTree,
    Node,
    ProofError,
    consistency_path,
    frontier_nodes,
    inclusion_path,
    leaf_hash,
    node_at,
    node_hash,
    root_from_frontier,
    root_of_leaves,
    stored_count,
    stored_index,
    verify_consistency,
    verify_inclusion,
)

CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_CONSISTENCY = {
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}  # fmt: skip
MAX = 70


# -- a naive tree, written from RFC 9162 §2.1's definitions --------------------------------


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = k_of(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = k_of(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = k_of(len(d))
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else subproof(m, d, True)


# -- a stored tree, as a store keeps it ------------------------------------------------------


class Stored:
    """Every complete subtree, appended through CompactTree (as the stores do)."""

    def __init__(self, data: Sequence[bytes]) -> None:
        self.data = list(data)
        self.nodes: list[bytes] = []
        tree = CompactTree()
        self.roots = [tree.root()]
        for d in self.data:
            for position, value in tree.append(leaf_hash(d)):
                assert position == len(self.nodes)
                self.nodes.append(value)
            self.roots.append(tree.root())

    def source(self, wanted: Sequence[Node]) -> Mapping[Node, bytes]:
        return {node: self.nodes[stored_index(*node)] for node in wanted}

    def root(self, size: int) -> bytes:
        return root_from_frontier(list(self.source(frontier_nodes(size)).values()))


def data_of(n: int) -> list[bytes]:
    return [f"record {i}".encode() * (i % 3 + 1) for i in range(n)]


@pytest.fixture(scope="module")
def big() -> Stored:
    return Stored(data_of(MAX))


def test_the_ct_test_vectors() -> None:
    """RFC 6962's eight leaves: every root, and the published consistency proofs."""
    stored = Stored(CT_LEAVES)
    for n in range(9):
        assert stored.root(n).hex() == CT_ROOTS[n] == stored.roots[n].hex()
        assert root_of_leaves([leaf_hash(d) for d in CT_LEAVES[:n]]).hex() == CT_ROOTS[n]
    for (m, n), expected in CT_CONSISTENCY.items():
        got = consistency_path(m, n, stored.source)
        assert [h.hex() for h in got] == expected
        verify_consistency(m, n, stored.root(m), stored.root(n), got)
    assert [h.hex() for h in inclusion_path(0, 8, stored.source)] == CT_CONSISTENCY[(1, 8)]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


def test_stored_positions() -> None:
    """Nodes are kept in the order they complete: position = 2n − popcount(n) for leaf n,
    and the nodes leaf n completes right after it."""
    assert [stored_count(n) for n in range(9)] == [0, 1, 3, 4, 7, 8, 10, 11, 15]
    order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4)]
    assert [stored_index(*node) for node in order] == list(range(8))
    assert [node_at(i) for i in range(8)] == order


def _node_at_by_walking(position: int) -> Node:
    """node_at as it was: from (position + 64) // 2 down, one step at a time."""
    n = (position + 64) // 2
    while stored_count(n) > position:
        n -= 1
    level = position - stored_count(n)
    return level, n >> level


def test_node_at_inverts_stored_index_for_every_position_up_to_70000() -> None:
    """Every position of a tree of 35,000 leaves, in order: node_at is the inverse of
    stored_index and agrees with the old walk from (position + 64) // 2."""
    position = 0
    for n in range(35_000):
        level = 0
        while True:
            node = (level, n >> level)
            assert stored_index(*node) == position
            assert node_at(position) == node == _node_at_by_walking(position), position
            position += 1
            if (n + 1) % (1 << (level + 1)):  # leaf n completes no node above
                break
            level += 1
    with pytest.raises(ValueError, match="no node at position -1"):
        node_at(-1)


@settings(max_examples=2_000, deadline=None)
@given(st.integers(min_value=0, max_value=2**62) | st.integers(min_value=0, max_value=2**20))
def test_node_at_agrees_with_the_old_walk_on_large_positions(position: int) -> None:
    level, index = node_at(position)
    assert stored_index(level, index) == position
    assert (level, index) == _node_at_by_walking(position)


def test_every_root_of_every_size(big: Stored) -> None:
    """Sizes 0..70: the incremental root, the root from the stored frontier and the
    recursive definition agree."""
    for n in range(MAX + 1):
        assert big.roots[n] == big.root(n) == mth(big.data[:n]), n


def test_every_inclusion_proof_of_every_size(big: Stored) -> None:
    """Every leaf of every tree of 1..70 leaves: PATH equals the RFC's and verifies."""
    for n in range(1, MAX + 1):
        root = big.root(n)
        for m in range(n):
            got = inclusion_path(m, n, big.source)
            assert got == path(m, big.data[:n]), (m, n)
            verify_inclusion(leaf_hash(big.data[m]), m, n, got, root)


def test_every_consistency_proof_of_every_size(big: Stored) -> None:
    """Every pair 0 ≤ m ≤ n ≤ 70: PROOF equals the RFC's and verifies; m = 0 and m = n
    give the empty path."""
    for n in range(MAX + 1):
        for m in range(n + 1):
            got = consistency_path(m, n, big.source)
            assert got == proof(m, big.data[:n]), (m, n)
            if m in (0, n):
                assert got == []
            verify_consistency(m, n, big.root(m), big.root(n), got)


# -- forged and mangled proofs ---------------------------------------------------------------

def flipped(value: bytes, bit: int = 0) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def refused(check: object, *args: object, match: str | None = None) -> None:
    with pytest.raises(ProofError, match=match):
        check(*args)  # type: ignore[operator]


def test_a_mutated_inclusion_proof_is_refused(big: Stored) -> None:
    """Every element of every path of trees up to 21 leaves with one bit flipped; the
    wrong leaf; the wrong root; elements swapped."""
    for n in range(1, 22):
        root = big.root(n)
        for m in range(n):
            good = inclusion_path(m, n, big.source)
            leaf = leaf_hash(big.data[m])
            for i, bit in itertools.product(range(len(good)), (0, 77, 255)):
                bad = [*good[:i], flipped(good[i], bit), *good[i + 1 :]]
                refused(verify_inclusion, leaf, m, n, bad, root, match="root")
            refused(verify_inclusion, flipped(leaf), m, n, good, root, match="root")
            refused(verify_inclusion, leaf, m, n, good, flipped(root), match="root")
            if len(good) > 1 and good[0] != good[1]:
                refused(verify_inclusion, leaf, m, n, good[::-1], root, match="root")


def test_inclusion_with_wrong_sizes_or_indices_is_refused(big: Stored) -> None:
    for n in range(1, 40):
        root = big.root(n)
        for m in range(n):
            good = inclusion_path(m, n, big.source)
            leaf = leaf_hash(big.data[m])
            for other in {n - 1, n + 1, 2 * n} - {n}:
                # a checkpoint of another size carries that size's root
                if m < other <= MAX and inclusion_path(m, other, big.source) != good:
                    refused(verify_inclusion, leaf, m, other, good, big.root(other))
                elif m < other <= MAX:
                    refused(verify_inclusion, leaf, m, other, good, root, match="root")
            for index in {m - 1, m + 1} - {m}:
                if 0 <= index < n:
                    refused(verify_inclusion, leaf, index, n, good, root)
            refused(verify_inclusion, leaf, n, n, good, root, match="not below the tree size")
            refused(verify_inclusion, leaf, n + 5, n, good, root, match="not below")
            refused(verify_inclusion, leaf, -1, n, good, root, match="negative")


def test_truncated_or_extended_inclusion_paths_are_refused(big: Stored) -> None:
    for n in range(1, 40):
        root = big.root(n)
        for m in range(n):
            good = inclusion_path(m, n, big.source)
            leaf = leaf_hash(big.data[m])
            if good:
                refused(verify_inclusion, leaf, m, n, good[:-1], root, match="path length")
                refused(verify_inclusion, leaf, m, n, good[1:], root, match="path length")
            refused(verify_inclusion, leaf, m, n, [*good, root], root, match="path length")
            refused(verify_inclusion, leaf, m, n, [leaf, *good], root, match="path length")


def test_a_single_leaf_tree_needs_the_empty_path() -> None:
    leaf = leaf_hash(b"only")
    verify_inclusion(leaf, 0, 1, [], leaf)
    refused(verify_inclusion, leaf, 0, 1, [leaf], leaf, match="path length")
    refused(verify_inclusion, leaf, 0, 0, [], EMPTY_ROOT, match="not below")


def test_hashes_of_the_wrong_length_are_refused(big: Stored) -> None:
    good = inclusion_path(3, 10, big.source)
    leaf, root = leaf_hash(big.data[3]), big.root(10)
    refused(verify_inclusion, leaf, 3, 10, [good[0][:31], *good[1:]], root, match="32-byte")
    refused(verify_inclusion, leaf + b"\x00", 3, 10, good, root, match="32-byte")


def test_a_mutated_consistency_proof_is_refused(big: Stored) -> None:
    for n in range(1, 26):
        for m in range(1, n):
            good = consistency_path(m, n, big.source)
            old, new = big.root(m), big.root(n)
            for i in range(len(good)):
                bad = [*good[:i], flipped(good[i], 3 * i), *good[i + 1 :]]
                refused(verify_consistency, m, n, old, new, bad, match="root")
            refused(verify_consistency, m, n, flipped(old), new, good, match="root")
            refused(verify_consistency, m, n, old, flipped(new), good, match="root")
            refused(verify_consistency, m, n, old, new, good[:-1], match="path length")
            refused(verify_consistency, m, n, old, new, [*good, new], match="path length")
            refused(verify_consistency, m, n, old, new, [], match="path length")


def test_consistency_with_wrong_sizes_is_refused(big: Stored) -> None:
    for n in range(2, 40):
        for m in range(1, n):
            good = consistency_path(m, n, big.source)
            old, new = big.root(m), big.root(n)
            for mm, nn in {(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)}:
                if 0 < mm < nn <= MAX and consistency_path(mm, nn, big.source) != good:
                    refused(verify_consistency, mm, nn, big.root(mm), big.root(nn), good)
            refused(verify_consistency, n, m, new, old, good, match="larger than")


def test_the_empty_cases_of_consistency() -> None:
    """From size 0 and between equal sizes the path is empty; equal sizes need equal roots;
    size 0's root is the empty tree's; a non-empty path there is refused."""
    root = root_of_leaves([leaf_hash(b"a"), leaf_hash(b"b")])
    verify_consistency(0, 2, EMPTY_ROOT, root, [])
    verify_consistency(2, 2, root, root, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    refused(verify_consistency, 2, 2, root, flipped(root), [], match="two different roots")
    refused(verify_consistency, 0, 2, root, root, [], match="empty tree")
    refused(verify_consistency, 0, 2, EMPTY_ROOT, root, [root], match="must be empty")
    refused(verify_consistency, 2, 2, root, root, [root], match="must be empty")
    refused(verify_consistency, -1, 2, EMPTY_ROOT, root, [], match="negative")


def test_a_proof_for_another_pair_of_sizes_does_not_carry_over(big: Stored) -> None:
    """A consistency path valid for (m, n) presented for another (m', n) with the same
    path length is refused (the proof's shape depends on both sizes)."""
    for n in range(3, 40):
        for m, mm in itertools.permutations(range(1, n), 2):
            good = consistency_path(m, n, big.source)
            if len(consistency_path(mm, n, big.source)) == len(good):
                refused(verify_consistency, mm, n, big.root(m), big.root(n), good)


def test_a_compact_tree_checks_its_frontier() -> None:
    with pytest.raises(ValueError, match="has 2 frontier hashes, not 1"):
        CompactTree(3, [EMPTY_ROOT])
