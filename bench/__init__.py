"""The benchmark harness (`make bench`): emulators, load generator, baselines and the scenarios that use them."""
