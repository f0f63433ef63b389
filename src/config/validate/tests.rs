//! Tests for validation.
