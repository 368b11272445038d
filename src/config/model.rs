//! The loaded configuration: one environment, its variables and module instances, each with
//! its resource blocks, inputs and outputs, still as unevaluated expressions.

use super::expr::ValueExpr;
use super::source::{SourceFile, Span};
use crate::value::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A whole environment's configuration.
#[derive(Debug)]
pub struct Configuration {
    pub root: PathBuf,
    pub env: EnvSettings,
    pub vars: BTreeMap<String, Value>,
    /// The environment file's own blocks come first, under the empty module name.
    pub modules: Vec<ModuleInstance>,
    pub files: Vec<Arc<SourceFile>>,
}

/// The `[env]`, `[backend]`, `[gcp]` and `[emulator]` tables of an environment.
#[derive(Debug, Clone)]
pub struct EnvSettings {
    pub name: String,
    pub project: String,
    pub project_number: Option<String>,
    pub region: String,
    pub backend: BackendSettings,
    /// Base URL serving every Google API (an emulator); `None` means Google's own endpoints.
    pub endpoint: Option<String>,
    /// Refuse to run unless `INFRA_GCP_ENDPOINT` names an emulator (never reach Google).
    pub emulator_only: bool,
    /// `[gcp] credentials = "none"`: the endpoint is an emulator that takes no credentials.
    /// Never inferred from the endpoint's URL.
    pub without_credentials: bool,
    /// `[gcp] quota_project`: the project user credentials bill API quota to, when ADC names none.
    pub quota_project: Option<String>,
    pub emulator: Option<EmbeddedEmulator>,
    pub file: Arc<SourceFile>,
}

/// Where an environment keeps its state.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendSettings {
    Local {
        path: PathBuf,
    },
    Gcs {
        bucket: String,
        prefix: String,
        create_bucket: bool,
    },
}

/// An emulator started inside the `infra` process for this environment.
#[derive(Debug, Clone)]
pub struct EmbeddedEmulator {
    pub data_dir: PathBuf,
}

/// One instantiation of a module (or the environment's own blocks).
#[derive(Debug)]
pub struct ModuleInstance {
    pub name: String,
    pub source: String,
    pub directory: PathBuf,
    pub inputs: BTreeMap<String, InputDecl>,
    pub arguments: BTreeMap<String, ValueExpr>,
    pub resources: Vec<ResourceBlock>,
    pub outputs: BTreeMap<String, OutputDecl>,
}

impl ModuleInstance {
    /// Returns the address prefix of this module's blocks (`module.NAME.` or nothing).
    pub fn address_prefix(&self) -> String {
        if self.name.is_empty() {
            String::new()
        } else {
            format!("module.{}.", self.name)
        }
    }

    /// Finds a resource block by kind and name.
    pub fn resource(&self, kind: &str, name: &str) -> Option<&ResourceBlock> {
        self.resources
            .iter()
            .find(|block| block.kind == kind && block.name == name)
    }
}

/// A declared module input.
#[derive(Debug)]
pub struct InputDecl {
    pub name: String,
    pub input_type: InputType,
    pub default: Option<ValueExpr>,
    pub span: Span,
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    String,
    Number,
    Bool,
    Map,
    List,
    Any,
}

impl InputType {
    /// Parses a type name as written in `type = "…"`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => InputType::String,
            "number" => InputType::Number,
            "bool" => InputType::Bool,
            "map" => InputType::Map,
            "list" => InputType::List,
            "any" => InputType::Any,
            _ => return None,
        })
    }

    /// Returns true when a value fits this type (unknown fits everything).
    pub fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (InputType::Any, _)
                | (_, Value::Marker(_))
                | (InputType::String, Value::String(_))
                | (InputType::Number, Value::Integer(_) | Value::Float(_))
                | (InputType::Bool, Value::Bool(_))
                | (InputType::Map, Value::Map(_))
                | (InputType::List, Value::List(_))
        )
    }
}

/// A declared output.
#[derive(Debug)]
pub struct OutputDecl {
    pub name: String,
    pub value: ValueExpr,
    pub sensitive: bool,
    pub span: Span,
}

/// A `[resource.KIND.NAME]` block.
#[derive(Debug)]
pub struct ResourceBlock {
    pub kind: String,
    pub name: String,
    pub for_each: Option<ValueExpr>,
    pub attributes: BTreeMap<String, ValueExpr>,
    pub depends_on: Vec<(String, Span)>,
    pub lifecycle: Lifecycle,
    pub span: Span,
}

/// `lifecycle = { prevent_destroy, ignore_changes }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub prevent_destroy: bool,
    pub ignore_changes: Vec<String>,
}

/// A node of the block-level graph: a resource block, a module input or a module output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockId {
    Resource {
        module: String,
        kind: String,
        name: String,
    },
    Input {
        module: String,
        name: String,
    },
    Output {
        module: String,
        name: String,
    },
}

impl BlockId {
    /// Returns the module this block belongs to.
    pub fn module(&self) -> &str {
        match self {
            BlockId::Resource { module, .. }
            | BlockId::Input { module, .. }
            | BlockId::Output { module, .. } => module,
        }
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let module = self.module();
        if !module.is_empty() {
            write!(formatter, "module.{module}.")?;
        }
        match self {
            BlockId::Resource { kind, name, .. } => write!(formatter, "{kind}.{name}"),
            BlockId::Input { name, .. } => write!(formatter, "input.{name}"),
            BlockId::Output { name, .. } => write!(formatter, "output.{name}"),
        }
    }
}

/// Formats a resource instance address: `module.m.kind.name["key"]`.
pub fn instance_address(module: &str, kind: &str, name: &str, key: Option<&str>) -> String {
    let mut address = String::new();
    if !module.is_empty() {
        address.push_str("module.");
        address.push_str(module);
        address.push('.');
    }
    address.push_str(kind);
    address.push('.');
    address.push_str(name);
    if let Some(key) = key {
        address.push_str(&format!("[{key:?}]"));
    }
    address
}
