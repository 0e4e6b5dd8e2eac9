"""Schemathesis over every operation of an OpenAPI document: what the fuzz tests and the
benchmarks' fuzz runs share."""

from __future__ import annotations


def each_case(schema, key: str, examples: int, run) -> None:
    """`run(operation, case)` for `examples` valid and as many invalid inputs of every operation
    of `schema` (derandomized), each case carrying `key`."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode, headers={"X-API-Key": key}))
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def one(case):
                run(operation, case)

            try:
                one()
            except Unsatisfiable:  # no invalid input exists (a route without parameters)
                assert mode == GenerationMode.NEGATIVE
