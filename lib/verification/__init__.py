"""Verification with Clearout: the cost and the start of a run (plan), the worker process's side
(worker), the verdicts file (verdicts), what pages show (views) and the credit balance (balance)."""
