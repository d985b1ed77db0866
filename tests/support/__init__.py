"""Test support shared by the tests and the benchmarks: ports, child processes, the stand-in."""
