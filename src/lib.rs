//! sluice: a Kubernetes ingress controller and L4/L7 load balancer.
//!
//! Data plane: [`pool`], [`balance`], [`health`], [`proxy`], [`policy`] — they read only the validated
//! model in [`config`] and never import Kubernetes types. Producers of that model: the file
//! loader ([`config::load_file`]) and, in Kubernetes mode, the controller.

pub mod admin;
pub mod api;
pub mod balance;
pub mod config;
pub mod controller;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod policy;
pub mod pool;
pub mod process;
pub mod proxy;
pub mod route;
pub mod standalone;
