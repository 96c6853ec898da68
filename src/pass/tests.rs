//! Unit tests of the pass against in-memory fakes.
