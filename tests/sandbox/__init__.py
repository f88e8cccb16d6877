"""Contract tests of lib/sandbox over real HTTP."""
