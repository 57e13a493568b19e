//! Code shared by the root benches. `workload` and `engine` are also compiled into the
//! comparison crate (`benches/compare/`), by path, so both measure the same thing.

pub mod engine;
pub mod workload;
