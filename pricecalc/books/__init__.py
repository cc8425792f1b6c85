"""The books read back from the audit store: record filters, settlement, statement, the
once-only check and the campaign report."""
