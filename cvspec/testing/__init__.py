"""Helpers the generated pytest suites call, so generated tests stay thin."""
