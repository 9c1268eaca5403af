//! The litefs-rs node engine.
