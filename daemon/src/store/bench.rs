//! The history benchmark: fill SQLite with a million rows, then time inserts and history pages.
