//! The berth control plane: the ECS API over HTTP, SigV4-verified, on a durable store.
//!
//! A request flows `front` (HTTP, SigV4, `X-Amz-Target`) -> `operations` (the table of
//! typed handlers) -> one handler module per ECS resource family (`clusters`,
//! `task_definitions`, `tags`, `account_settings`, and `logs` for the CloudWatch Logs subset) -> `records` (typed reads and CAS
//! writes on the [`berth_store::Store`]).

mod account_settings;
mod agent_channel;
pub mod auth;
mod capacity_providers;
mod clusters;
mod container_instances;
mod credentials;
mod fargate;
mod front;
mod iam;
mod liveness;
mod logs;
mod operations;
mod pagination;
mod placement;
mod records;
pub mod scheduler;
mod secrets;
mod server;
mod services;
mod state;
mod tags;
mod task_definitions;
mod task_roles;
mod tasks;

pub use fargate::POOL as FARGATE_POOL;
pub use server::{Config, RunningServer, ServerError, DEFAULT_LISTEN};
pub use services::Timing as ServiceTiming;
