"""The built-in rules, one module per kind: pure functions from input objects to a decision.

A rule module imports only the plugin contract (`pricecalc.decision`, `fields`, `money`,
`policy`, `registry`, `errors`, `history`, `toolkit`, `offers`, …) and other rule modules —
never the files, the books, the store or the command line (tests/test_layout.py checks it).
"""
