//! Configuration: TOML sources with spans, the `${…}` language, loading and validation of an
//! environment and its modules, and expression evaluation.

pub mod error;
pub mod eval;
pub mod expr;
mod kind_checks;
pub mod load;
pub mod model;
pub mod reads;
pub mod source;

pub use error::{ConfigError, Diagnostic, DiagnosticCode};
pub(crate) use kind_checks::kind_diagnostics;
pub use load::{list_envs, load};
pub use model::{
    BackendSettings, BlockId, Configuration, EmbeddedEmulator, EnvSettings, Lifecycle,
    ModuleInstance, ResourceBlock, instance_address,
};
