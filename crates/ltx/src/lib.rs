//! LTX v1 file format.
