//! `approvald`: human approval gates as a service.
//!
//! Layout, outside in: `app` assembles a process; `inbox` serves the web page; `api` is the gRPC layer
//! (thin: parse, delegate, convert); `approvals` holds the use cases and the
//! background tasks (event pump, reaper); `audit` writes the audit log; `readiness` says whether
//! the replica should get calls; `waiters` is the local
//! registry of blocked calls; `store` keeps approvals (Redis or memory);
//! `domain` is the approval itself, with no I/O; `webhooks` tells the
//! operator's endpoints what happened.

pub mod api;
pub mod app;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod browsers;
pub mod config;
pub mod config_file;
pub mod connections;
pub mod domain;
pub mod inbox;
pub mod metrics;
pub mod origins;
pub mod readiness;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod waiters;
pub mod watch_queue;
pub mod webhooks;

pub use app::{Application, StartError, LIVENESS_SERVICE_NAME, SERVICE_NAME};
pub use config::Config;
