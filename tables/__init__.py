"""State: per-order facts, per-seller figures, the decision core that keeps them, and the
Faust tables that hold them live (streams.table_stores)."""
