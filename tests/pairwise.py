"""A small, deterministic all-pairs (pairwise) generator.

Given parameters and their values, :func:`all_pairs` returns rows (one value
per parameter) such that every pair of values of every two parameters appears
together in at least one row. Bugs that need two options to interact are then
caught by baking a few dozen projects instead of every combination.

The algorithm is a deterministic greedy one in the spirit of AETG:

1. parameters are taken in order of decreasing number of values (a stable
   sort), which lets the greedy fill the largest cross products first;
2. the first row holds every parameter's first value (the template's defaults);
3. each next row starts from the first still-uncovered pair (in parameter
   order, then value order), and fills every other parameter with the value
   that covers the most uncovered pairs with the values already chosen; ties
   go to the value with more uncovered pairs left with the parameters still
   unset, then to the earlier value (defaults first);
4. until no pair is left uncovered.

No randomness and no dependency: the same input always gives the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

# A pair: (parameter index, value index), (parameter index, value index),
# the first parameter index lower than the second.
Pair = tuple[tuple[int, int], tuple[int, int]]


def required_pairs(sizes: Sequence[int]) -> set[Pair]:
    """Every pair of values that must appear together, by index."""
    return {
        ((i, a), (j, b))
        for i, j in combinations(range(len(sizes)), 2)
        for a in range(sizes[i])
        for b in range(sizes[j])
    }


def covered_pairs(row: Sequence[int]) -> set[Pair]:
    """The pairs one row covers (a row is one value index per parameter)."""
    return {((i, row[i]), (j, row[j])) for i, j in combinations(range(len(row)), 2)}


def _gain(uncovered: set[Pair], row: dict[int, int], param: int, value: int) -> int:
    """How many uncovered pairs choosing ``param = value`` covers, given ``row``."""
    total = 0
    for other, chosen in row.items():
        mine, theirs = (param, value), (other, chosen)
        pair = (theirs, mine) if other < param else (mine, theirs)
        total += pair in uncovered
    return total


def _open(
    uncovered: set[Pair], row: dict[int, int], param: int, value: int, sizes: Sequence[int]
) -> int:
    """Tie-breaker: uncovered pairs of ``param = value`` with parameters not yet set."""
    total = 0
    for other in range(len(sizes)):
        if other == param or other in row:
            continue
        for chosen in range(sizes[other]):
            mine, theirs = (param, value), (other, chosen)
            total += ((theirs, mine) if other < param else (mine, theirs)) in uncovered
    return total


def pairwise_indices(sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Rows of value indices covering every pair, for parameters of ``sizes``."""
    if any(size < 1 for size in sizes):
        raise ValueError("every parameter needs at least one value")
    if not sizes:
        return [()]
    rows: list[tuple[int, ...]] = [tuple(0 for _ in sizes)]
    uncovered = required_pairs(sizes) - covered_pairs(rows[0])
    while uncovered:
        (first, a), (second, b) = min(uncovered)
        row = {first: a, second: b}
        for param in range(len(sizes)):
            if param in row:
                continue
            scores = [
                (_gain(uncovered, row, param, value), _open(uncovered, row, param, value, sizes))
                for value in range(sizes[param])
            ]
            row[param] = scores.index(max(scores))
        full = tuple(row[param] for param in range(len(sizes)))
        rows.append(full)
        uncovered -= covered_pairs(full)
    return rows


def all_pairs(parameters: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Combinations of ``parameters`` covering every pair of values.

    The first combination is every parameter's first value; the result depends
    only on the input (names and value order), never on chance.
    """
    # Parameters with the most values first (a stable sort, so still
    # deterministic): the greedy fills the largest cross products first, which
    # gives fewer rows. Each row is handed back in the caller's order.
    names = sorted(parameters, key=lambda name: -len(parameters[name]))
    values = [list(parameters[name]) for name in names]
    result = []
    for row in pairwise_indices([len(v) for v in values]):
        chosen = {name: values[p][i] for p, (name, i) in enumerate(zip(names, row, strict=True))}
        result.append({name: chosen[name] for name in parameters})
    return result


def uncovered_pairs(
    parameters: Mapping[str, Sequence[str]], combinations_: Sequence[Mapping[str, str]]
) -> set[tuple[tuple[str, str], tuple[str, str]]]:
    """The value pairs of ``parameters`` that no combination holds (empty: all covered).

    Written independently of the generator, over names and values rather than
    indices, so a test can use it to prove what the generator claims.
    """
    wanted = {
        ((p, a), (q, b))
        for p, q in combinations(list(parameters), 2)
        for a in parameters[p]
        for b in parameters[q]
    }
    seen = {
        ((p, combo[p]), (q, combo[q]))
        for combo in combinations_
        for p, q in combinations(list(parameters), 2)
    }
    return wanted - seen
