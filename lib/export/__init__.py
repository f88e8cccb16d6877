"""Export to CleverTap: plan (dry run), payloads, runs, the applier and its worker, read-back, undo, views.

Pages import the module they need (`from lib.export import runs`); nothing is re-exported here.
"""
