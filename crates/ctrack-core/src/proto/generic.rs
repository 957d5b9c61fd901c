//! Generic protocol tracker (stub).
