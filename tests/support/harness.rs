//! The harness of the end-to-end tests against a real API server, in one module for the
//! test files to include (`#[path = "support/harness.rs"] mod support;`, beside `mod
//! common;`): the control plane ([`kube`]), the controller process ([`controller`]), the
//! backends and their Services ([`fixtures`]) and a small HTTP client ([`http`]).

pub mod controller;
pub mod fixtures;
pub mod http;
pub mod kube;
