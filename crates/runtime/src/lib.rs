//! The berth agent's runtime: the mechanisms that turn a placed task into running
//! processes, kept apart from the task engine that decides what to run (as youki keeps
//! `libcontainer` apart from its CLI).
//!
//! - [`images`]: pull from OCI / Docker v2 registries, load archives, keep layers
//!   content-addressed, and assemble a container's overlay rootfs.
//! - [`container`]: write an OCI bundle, run it with `runc` under a per-container shim
//!   that outlives the agent, and report exit status.
//! - [`network`]: a network namespace per task on a berth bridge through the CNI plugins.
//! - [`cgroups`]: task-level CPU and memory limits that bound all of a task's containers.
//! - [`microvm`]: a qemu `microvm` guest per Fargate task (`--isolation microvm`).
//! - [`storage`]: a size-limited file system per task (Fargate's `ephemeralStorage`).

pub mod network;

pub mod images;

pub mod cgroups;
pub mod container;
pub mod microvm;
mod mountinfo;
pub mod storage;
