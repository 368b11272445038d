//! Loads an environment: reads `envs/<env>/env.toml` and the modules it instantiates, checks
//! every key, kind, field and reference, and returns all problems at once.

use super::error::{ConfigError, Diagnostic, DiagnosticCode};
use super::expr::{Traversal, ValueExpr};
use super::model::*;
use super::source::{Entry, Node, NodeKind, SourceFile, Span, parse_toml};
use crate::gcp::kinds;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ENV_KEYS: [&str; 4] = ["name", "project", "region", "project_number"];
const EACH_KEYS: [&str; 2] = ["key", "value"];
const FUNCTIONS: [&str; 9] = [
    "file",
    "json",
    "jsonencode",
    "join",
    "lower",
    "upper",
    "zipmap",
    "merge",
    "if",
];

/// Loads and validates the environment `env` of the project at `root`.
pub fn load(root: &Path, env: &str) -> Result<Configuration, ConfigError> {
    let mut loader = Loader {
        root: root.to_path_buf(),
        diagnostics: Vec::new(),
        files: Vec::new(),
    };
    let configuration = loader.load_env(env);
    match configuration {
        Some(configuration) if loader.diagnostics.is_empty() => Ok(configuration),
        _ => Err(ConfigError {
            diagnostics: loader.diagnostics,
        }),
    }
}

struct Loader {
    root: PathBuf,
    diagnostics: Vec<Diagnostic>,
    files: Vec<Arc<SourceFile>>,
}

impl Loader {
    fn read(&mut self, relative: &Path) -> Option<(Arc<SourceFile>, Node)> {
        let path = self.root.join(relative);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                self.diagnostics.push(Diagnostic::unplaced(
                    DiagnosticCode::MissingFile,
                    format!("{}: {error}", relative.display()),
                ));
                return None;
            }
        };
        let file = SourceFile::new(&path, relative.display().to_string(), text);
        self.files.push(file.clone());
        match parse_toml(&file) {
            Ok(node) => Some((file, node)),
            Err(errors) => {
                for error in errors {
                    let diagnostic =
                        Diagnostic::new(DiagnosticCode::Syntax, &error.span, error.message);
                    self.diagnostics.push(match error.hint {
                        Some(hint) => diagnostic.with_hint(hint),
                        None => diagnostic,
                    });
                }
                None
            }
        }
    }

    fn unknown_key(&mut self, entry: &Entry, key: &str, context: &str, allowed: &[&str]) {
        self.diagnostics.push(
            Diagnostic::new(
                DiagnosticCode::UnknownField,
                &entry.key_span,
                format!("unknown key `{key}` in {context}"),
            )
            .with_hint(format!("allowed keys: {}", allowed.join(", "))),
        );
    }

    fn string(&mut self, entry: &Entry, what: &str) -> Option<String> {
        match entry.node.as_str() {
            Some(text) => Some(text.to_string()),
            None => {
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        &entry.node.span,
                        format!("{what} must be a string (got {})", entry.node.type_name()),
                    )
                    .with_hint("write it in quotes, like key = \"…\""),
                );
                None
            }
        }
    }

    fn table<'a>(&mut self, entry: &'a Entry, what: &str) -> Option<&'a BTreeMap<String, Entry>> {
        let table = entry.node.as_table();
        if table.is_none() {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::InvalidValue,
                    &entry.node.span,
                    format!("{what} must be a table (got {})", entry.node.type_name()),
                )
                .with_hint("write it as a [section] of keys, or inline as { key = … }"),
            );
        }
        table
    }

    fn load_env(&mut self, env: &str) -> Option<Configuration> {
        let relative = PathBuf::from("envs").join(env).join("env.toml");
        if !self.root.join(&relative).exists() {
            let available = list_envs(&self.root);
            self.diagnostics.push(
                Diagnostic::unplaced(
                    DiagnosticCode::MissingFile,
                    format!(
                        "environment `{env}` not found: {} does not exist",
                        relative.display()
                    ),
                )
                .with_hint(format!(
                    "available environments: {}",
                    if available.is_empty() {
                        "none".into()
                    } else {
                        available.join(", ")
                    }
                )),
            );
            return None;
        }
        let (file, root_node) = self.read(&relative)?;
        let top = root_node.as_table()?.clone();
        let mut settings = BTreeMap::<&str, String>::new();
        let mut backend = None;
        let mut endpoint = None;
        let mut emulator_only = false;
        let mut without_credentials = false;
        let mut quota_project = None;
        let mut emulator = None;
        let mut vars = BTreeMap::new();
        let mut root_module = ModuleInstance {
            name: String::new(),
            source: String::new(),
            directory: self.root.join("envs").join(env),
            inputs: BTreeMap::new(),
            arguments: BTreeMap::new(),
            resources: Vec::new(),
            outputs: BTreeMap::new(),
        };
        let mut module_calls = Vec::new();
        for (key, entry) in &top {
            match key.as_str() {
                "env" => {
                    let Some(table) = self.table(entry, "[env]") else {
                        continue;
                    };
                    for (field, value) in table {
                        if !ENV_KEYS.contains(&field.as_str()) {
                            self.unknown_key(value, field, "[env]", &ENV_KEYS);
                        } else if let Some(text) = self.string(value, &format!("env.{field}")) {
                            if text.trim().is_empty() {
                                self.diagnostics.push(
                                    Diagnostic::new(
                                        DiagnosticCode::InvalidValue,
                                        &value.node.span,
                                        format!("env.{field} is empty"),
                                    )
                                    .with_hint(format!("set {field} = \"…\" to a real value")),
                                );
                            }
                            let name = ENV_KEYS
                                .iter()
                                .find(|known| **known == field.as_str())
                                .copied()
                                .unwrap_or_default();
                            settings.insert(name, text);
                        }
                    }
                    for required in ["name", "project", "region"] {
                        if !settings.contains_key(required) {
                            self.diagnostics.push(
                                Diagnostic::new(
                                    DiagnosticCode::MissingField,
                                    &entry.key_span,
                                    format!("[env] is missing `{required}`"),
                                )
                                .with_hint(format!("add {required} = \"…\" under [env]")),
                            );
                        }
                    }
                    if let Some(name) = settings.get("name")
                        && name != env
                    {
                        let span = table
                            .get("name")
                            .map_or(entry.key_span.clone(), |value| value.node.span.clone());
                        self.diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::InvalidValue,
                                &span,
                                format!("env.name is `{name}` but the file is envs/{env}/env.toml"),
                            )
                            .with_hint(format!("set name = \"{env}\", or rename the directory")),
                        );
                    }
                }
                "backend" => backend = self.backend(entry, env),
                "gcp" => {
                    let Some(table) = self.table(entry, "[gcp]") else {
                        continue;
                    };
                    for (field, value) in table {
                        match (field.as_str(), &value.node.kind) {
                            ("endpoint", _) => endpoint = self.string(value, "gcp.endpoint"),
                            ("emulator_only", NodeKind::Bool(flag)) => emulator_only = *flag,
                            ("emulator_only", _) => self.diagnostics.push(
                                Diagnostic::new(
                                    DiagnosticCode::InvalidValue,
                                    &value.node.span,
                                    "gcp.emulator_only must be a boolean",
                                )
                                .with_hint("write emulator_only = true or false, without quotes"),
                            ),
                            ("quota_project", _) => {
                                quota_project = self.string(value, "gcp.quota_project")
                            }
                            ("credentials", _) => match value.node.as_str() {
                                Some("none") => without_credentials = true,
                                Some("application-default") => without_credentials = false,
                                _ => self.diagnostics.push(
                                    Diagnostic::new(
                                        DiagnosticCode::InvalidValue,
                                        &value.node.span,
                                        "gcp.credentials must be \"application-default\" or \"none\"",
                                    )
                                    .with_hint("\"none\" only for an emulator; Google (private and restricted endpoints included) needs \"application-default\""),
                                ),
                            },
                            _ => self.unknown_key(
                                value,
                                field,
                                "[gcp]",
                                &["endpoint", "emulator_only", "credentials", "quota_project"],
                            ),
                        }
                    }
                }
                "emulator" => {
                    let Some(table) = self.table(entry, "[emulator]") else {
                        continue;
                    };
                    let mut data = ".emulator".to_string();
                    let mut embedded = false;
                    for (field, value) in table {
                        match (field.as_str(), &value.node.kind) {
                            ("embedded", NodeKind::Bool(flag)) => embedded = *flag,
                            ("data", NodeKind::String(text)) => data = text.clone(),
                            ("embedded" | "data", _) => self.diagnostics.push(
                                Diagnostic::new(
                                    DiagnosticCode::InvalidValue,
                                    &value.node.span,
                                    format!(
                                        "emulator.{field} must be a {}",
                                        if field == "embedded" {
                                            "boolean"
                                        } else {
                                            "string"
                                        }
                                    ),
                                )
                                .with_hint("like embedded = true and data = \".emulator\""),
                            ),
                            _ => {
                                self.unknown_key(value, field, "[emulator]", &["embedded", "data"])
                            }
                        }
                    }
                    if embedded {
                        emulator = Some(EmbeddedEmulator {
                            data_dir: self.root.join("envs").join(env).join(data),
                        });
                    }
                }
                "vars" => {
                    let Some(table) = self.table(entry, "[vars]") else {
                        continue;
                    };
                    for (name, value) in table {
                        match ValueExpr::from_node(&value.node, &mut self.diagnostics) {
                            ValueExpr::Template(_, span) => self.diagnostics.push(
                                Diagnostic::new(
                                    DiagnosticCode::InvalidValue,
                                    &span,
                                    format!("var.{name}: variables are literal values"),
                                )
                                .with_hint("compute values in module inputs instead"),
                            ),
                            literal => {
                                // INFRA_VAR_<name> overrides a string variable, like TF_VAR_<name>:
                                // the way to pass what must not be committed or differs per run.
                                let value = match (
                                    literal.as_literal().unwrap_or_default(),
                                    std::env::var(format!("INFRA_VAR_{name}")),
                                ) {
                                    (crate::value::Value::String(_), Ok(from_environment)) => {
                                        crate::value::Value::String(from_environment)
                                    }
                                    (value, _) => value,
                                };
                                vars.insert(name.clone(), value);
                            }
                        }
                    }
                }
                "module" => {
                    let Some(table) = self.table(entry, "[module]") else {
                        continue;
                    };
                    for (name, call) in table {
                        module_calls.push((name.clone(), call.clone()));
                    }
                }
                "resource" => self.resources(entry, &mut root_module),
                "output" => self.outputs(entry, &mut root_module),
                _ => self.unknown_key(
                    entry,
                    key,
                    "env.toml",
                    &[
                        "env", "backend", "gcp", "emulator", "vars", "module", "resource", "output",
                    ],
                ),
            }
        }
        if !top.contains_key("env") {
            // Without [env] nothing says which project this is: an empty or comment-only file
            // must not pass as "an environment that declares nothing" (apply would destroy all).
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::MissingField,
                    &Span {
                        file: file.clone(),
                        start: 0,
                        end: 0,
                    },
                    format!("{} has no [env] table", relative.display()),
                )
                .with_hint(format!(
                    "add at the top: [env] with name = \"{env}\", project = \"<project id>\" and region = \"<region>\""
                )),
            );
        }
        let mut modules = vec![root_module];
        for (name, call) in module_calls {
            if let Some(instance) = self.module_call(&name, &call) {
                modules.push(instance);
            }
        }
        let configuration_env = EnvSettings {
            name: settings
                .get("name")
                .cloned()
                .unwrap_or_else(|| env.to_string()),
            project: settings.get("project").cloned().unwrap_or_default(),
            project_number: settings.get("project_number").cloned(),
            region: settings.get("region").cloned().unwrap_or_default(),
            backend: backend.unwrap_or(BackendSettings::Local {
                path: PathBuf::from("state").join(format!("{env}.state.json")),
            }),
            endpoint,
            emulator_only,
            without_credentials,
            quota_project,
            emulator,
            file,
        };
        let configuration = Configuration {
            root: self.root.clone(),
            env: configuration_env,
            vars,
            modules,
            files: self.files.clone(),
        };
        self.check_references(&configuration);
        Some(configuration)
    }

    fn backend(&mut self, entry: &Entry, env: &str) -> Option<BackendSettings> {
        let table = self.table(entry, "[backend]")?;
        let mut fields = BTreeMap::new();
        let mut create_bucket = false;
        for (field, value) in table {
            if field == "create_bucket" {
                match value.node.kind {
                    NodeKind::Bool(flag) => create_bucket = flag,
                    _ => self.diagnostics.push(
                        Diagnostic::new(
                            DiagnosticCode::InvalidValue,
                            &value.node.span,
                            "backend.create_bucket must be a boolean",
                        )
                        .with_hint("write create_bucket = true or false, without quotes"),
                    ),
                }
            } else if ["kind", "bucket", "prefix", "path"].contains(&field.as_str()) {
                if let Some(text) = self.string(value, &format!("backend.{field}")) {
                    fields.insert(field.as_str(), text);
                }
            } else {
                self.unknown_key(
                    value,
                    field,
                    "[backend]",
                    &["kind", "bucket", "prefix", "path", "create_bucket"],
                );
            }
        }
        match fields.get("kind").map(String::as_str) {
            Some("local") | None => Some(BackendSettings::Local {
                path: fields.get("path").map_or_else(
                    || PathBuf::from("state").join(format!("{env}.state.json")),
                    PathBuf::from,
                ),
            }),
            Some("gcs") => match fields.get("bucket") {
                Some(bucket) => Some(BackendSettings::Gcs {
                    bucket: bucket.clone(),
                    prefix: fields
                        .get("prefix")
                        .cloned()
                        .unwrap_or_else(|| "infra".into()),
                    create_bucket,
                }),
                None => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            DiagnosticCode::MissingField,
                            &entry.key_span,
                            "a gcs backend needs `bucket`",
                        )
                        .with_hint("add bucket = \"<bucket name>\" under [backend]"),
                    );
                    None
                }
            },
            Some(other) => {
                let span = table
                    .get("kind")
                    .map_or(entry.key_span.clone(), |value| value.node.span.clone());
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        &span,
                        format!("unknown backend kind `{other}`"),
                    )
                    .with_hint("use \"local\" or \"gcs\""),
                );
                None
            }
        }
    }

    fn module_call(&mut self, name: &str, call: &Entry) -> Option<ModuleInstance> {
        let table = self.table(call, &format!("[module.{name}]"))?;
        let Some(source_entry) = table.get("source") else {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::MissingField,
                    &call.key_span,
                    format!("module `{name}` has no `source`"),
                )
                .with_hint("add source = \"<directory under modules/>\""),
            );
            return None;
        };
        let source = self.string(source_entry, "source")?;
        let relative = PathBuf::from("modules").join(&source).join("module.toml");
        if !self.root.join(&relative).exists() {
            self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::MissingFile,
                    &source_entry.node.span,
                    format!(
                        "module source `{source}`: {} does not exist",
                        relative.display()
                    ),
                )
                .with_hint(format!(
                    "available modules: {}",
                    list_dirs(&self.root.join("modules")).join(", ")
                )),
            );
            return None;
        }
        let (_, node) = self.read(&relative)?;
        let mut instance = ModuleInstance {
            name: name.to_string(),
            source: source.clone(),
            directory: self.root.join("modules").join(&source),
            inputs: BTreeMap::new(),
            arguments: BTreeMap::new(),
            resources: Vec::new(),
            outputs: BTreeMap::new(),
        };
        for (key, entry) in node.as_table()? {
            match key.as_str() {
                "input" => self.inputs(entry, &mut instance),
                "resource" => self.resources(entry, &mut instance),
                "output" => self.outputs(entry, &mut instance),
                _ => self.unknown_key(entry, key, "a module", &["input", "resource", "output"]),
            }
        }
        for (argument, value) in table {
            if argument == "source" {
                continue;
            }
            if instance.inputs.contains_key(argument) {
                instance.arguments.insert(
                    argument.clone(),
                    ValueExpr::from_node(&value.node, &mut self.diagnostics),
                );
            } else {
                let declared: Vec<&str> = instance.inputs.keys().map(String::as_str).collect();
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::UnknownField,
                        &value.key_span,
                        format!("module `{name}` ({source}) has no input `{argument}`"),
                    )
                    .with_hint(format!(
                        "its inputs: {}",
                        if declared.is_empty() {
                            "none".into()
                        } else {
                            declared.join(", ")
                        }
                    )),
                );
            }
        }
        for (input_name, input) in &instance.inputs {
            if input.default.is_none() && !instance.arguments.contains_key(input_name) {
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::MissingInput,
                        &call.key_span,
                        format!("module `{name}` is missing the required input `{input_name}`"),
                    )
                    .with_hint(format!(
                        "set {input_name} = … under [module.{name}] (declared at {})",
                        input.span
                    )),
                );
            }
        }
        Some(instance)
    }

    fn inputs(&mut self, entry: &Entry, instance: &mut ModuleInstance) {
        let Some(table) = self.table(entry, "[input]") else {
            return;
        };
        for (name, declaration) in table {
            let Some(fields) = self.table(declaration, &format!("input.{name}")) else {
                continue;
            };
            let mut input = InputDecl {
                name: name.clone(),
                input_type: InputType::Any,
                default: None,
                span: declaration.key_span.clone(),
            };
            for (field, value) in fields {
                match field.as_str() {
                    "type" => match value.node.as_str().and_then(InputType::parse) {
                        Some(input_type) => input.input_type = input_type,
                        None => self.diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::InvalidValue,
                                &value.node.span,
                                format!("input.{name}.type is not a type"),
                            )
                            .with_hint("use string, number, bool, map, list or any"),
                        ),
                    },
                    "default" => {
                        input.default =
                            Some(ValueExpr::from_node(&value.node, &mut self.diagnostics))
                    }
                    "description" => {}
                    _ => self.unknown_key(
                        value,
                        field,
                        &format!("input.{name}"),
                        &["type", "default", "description"],
                    ),
                }
            }
            if let Some(default) = input.default.as_ref().and_then(ValueExpr::as_literal)
                && !input.input_type.accepts(&default)
            {
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::InvalidValue,
                        input.default.as_ref().map_or(&input.span, ValueExpr::span),
                        format!(
                            "input.{name}: the default is a {}, not a {:?}",
                            default.type_name(),
                            input.input_type
                        )
                        .to_lowercase(),
                    )
                    .with_hint("change the default, or the input's type"),
                );
            }
            instance.inputs.insert(name.clone(), input);
        }
    }

    fn outputs(&mut self, entry: &Entry, instance: &mut ModuleInstance) {
        let Some(table) = self.table(entry, "[output]") else {
            return;
        };
        for (name, declaration) in table {
            let Some(fields) = self.table(declaration, &format!("output.{name}")) else {
                continue;
            };
            let mut value = None;
            let mut sensitive = false;
            for (field, item) in fields {
                match (field.as_str(), &item.node.kind) {
                    ("value", _) => {
                        value = Some(ValueExpr::from_node(&item.node, &mut self.diagnostics))
                    }
                    ("sensitive", NodeKind::Bool(flag)) => sensitive = *flag,
                    ("description", _) => {}
                    _ => self.unknown_key(
                        item,
                        field,
                        &format!("output.{name}"),
                        &["value", "sensitive", "description"],
                    ),
                }
            }
            match value {
                Some(value) => {
                    instance.outputs.insert(
                        name.clone(),
                        OutputDecl {
                            name: name.clone(),
                            value,
                            sensitive,
                            span: declaration.key_span.clone(),
                        },
                    );
                }
                None => self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::MissingField,
                        &declaration.key_span,
                        format!("output `{name}` has no `value`"),
                    )
                    .with_hint(format!("add value = \"${{…}}\" under [output.{name}]")),
                ),
            }
        }
    }

    fn resources(&mut self, entry: &Entry, instance: &mut ModuleInstance) {
        let Some(kinds_table) = self.table(entry, "[resource]") else {
            return;
        };
        for (kind_name, blocks) in kinds_table {
            let Some(kind) = kinds::find(kind_name) else {
                let known: Vec<&str> = kinds::registry().iter().map(|kind| kind.name()).collect();
                self.diagnostics.push(
                    Diagnostic::new(
                        DiagnosticCode::UnknownKind,
                        &blocks.key_span,
                        format!("unknown resource kind `{kind_name}`"),
                    )
                    .with_hint(
                        match closest(kind_name, known.iter().copied()) {
                            Some(suggestion) => format!(
                                "did you mean `{suggestion}`? known kinds: {}",
                                known.join(", ")
                            ),
                            None => format!("known kinds: {}", known.join(", ")),
                        },
                    ),
                );
                continue;
            };
            let Some(blocks) = self.table(blocks, &format!("resource.{kind_name}")) else {
                continue;
            };
            for (block_name, block) in blocks {
                let Some(fields) = self.table(block, &format!("resource.{kind_name}.{block_name}"))
                else {
                    continue;
                };
                let mut resource = ResourceBlock {
                    kind: kind_name.clone(),
                    name: block_name.clone(),
                    for_each: None,
                    attributes: BTreeMap::new(),
                    depends_on: Vec::new(),
                    lifecycle: Lifecycle::default(),
                    span: block.key_span.clone(),
                };
                let address = format!("{}{kind_name}.{block_name}", instance.address_prefix());
                for (field, value) in fields {
                    match field.as_str() {
                        "for_each" => {
                            resource.for_each =
                                Some(ValueExpr::from_node(&value.node, &mut self.diagnostics))
                        }
                        "depends_on" => self.depends_on(value, &mut resource),
                        "lifecycle" => self.lifecycle(value, &mut resource),
                        _ => match kind
                            .fields()
                            .iter()
                            .find(|spec| spec.name == field.as_str())
                        {
                            Some(spec) => {
                                let expression =
                                    ValueExpr::from_node(&value.node, &mut self.diagnostics);
                                if let Some(literal) = expression.as_literal()
                                    && !spec.field_type.accepts(&literal)
                                {
                                    self.diagnostics.push(
                                        Diagnostic::new(
                                            DiagnosticCode::InvalidValue,
                                            &value.node.span,
                                            format!(
                                                "{address}: `{field}` must be a {} (got {})",
                                                spec.field_type.describe(),
                                                literal.type_name()
                                            ),
                                        )
                                        .with_hint(format!(
                                            "the fields of `{kind_name}` and their types: docs/kinds.md"
                                        )),
                                    );
                                }
                                resource.attributes.insert(field.clone(), expression);
                            }
                            None => {
                                let mut allowed: Vec<&str> =
                                    kind.fields().iter().map(|spec| spec.name).collect();
                                allowed.extend(["for_each", "depends_on", "lifecycle"]);
                                self.diagnostics.push(
                                    Diagnostic::new(
                                        DiagnosticCode::UnknownField,
                                        &value.key_span,
                                        format!("{address}: `{kind_name}` has no field `{field}`"),
                                    )
                                    .with_hint(match closest(field, allowed.iter().copied()) {
                                        Some(suggestion) => format!("did you mean `{suggestion}`? fields of {kind_name}: {}", allowed.join(", ")),
                                        None => format!("fields of {kind_name}: {}", allowed.join(", ")),
                                    }),
                                );
                            }
                        },
                    }
                }
                for spec in kind.fields().iter().filter(|spec| spec.required) {
                    if !resource.attributes.contains_key(spec.name) {
                        self.diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::MissingField,
                                &block.key_span,
                                format!("{address}: required field `{}` is not set", spec.name),
                            )
                            .with_hint(format!(
                                "add {} = … ({})",
                                spec.name,
                                spec.field_type.describe()
                            )),
                        );
                    }
                }
                // A kind's rules and limits are checked on evaluated values by the planner, which
                // `validate` runs too: literal or computed, all such problems come out together.
                instance.resources.push(resource);
            }
        }
    }

    fn depends_on(&mut self, entry: &Entry, resource: &mut ResourceBlock) {
        match &entry.node.kind {
            NodeKind::Array(items) => {
                for item in items {
                    match item.as_str() {
                        Some(text) => resource
                            .depends_on
                            .push((text.to_string(), item.span.clone())),
                        None => self.diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::InvalidValue,
                                &item.span,
                                "depends_on entries are strings like \"secret.name\"",
                            )
                            .with_hint("name a resource block of the same module as \"kind.name\""),
                        ),
                    }
                }
            }
            _ => self.diagnostics.push(
                Diagnostic::new(
                    DiagnosticCode::InvalidValue,
                    &entry.node.span,
                    "depends_on must be a list like [\"secret.name\"]",
                )
                .with_hint("put the address in brackets, even a single one"),
            ),
        }
    }

    fn lifecycle(&mut self, entry: &Entry, resource: &mut ResourceBlock) {
        let Some(table) = self.table(entry, "lifecycle") else {
            return;
        };
        for (field, value) in table {
            match (field.as_str(), &value.node.kind) {
                ("prevent_destroy", NodeKind::Bool(flag)) => {
                    resource.lifecycle.prevent_destroy = *flag
                }
                ("ignore_changes", NodeKind::Array(items)) => {
                    for item in items {
                        match item.as_str() {
                            Some(path) => resource.lifecycle.ignore_changes.push(path.to_string()),
                            None => self.diagnostics.push(
                                Diagnostic::new(
                                    DiagnosticCode::InvalidValue,
                                    &item.span,
                                    "lifecycle.ignore_changes entries are field names",
                                )
                                .with_hint("write them as strings, like ignore_changes = [\"labels\"]"),
                            ),
                        }
                    }
                }
                ("prevent_destroy" | "ignore_changes", _) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            DiagnosticCode::InvalidValue,
                            &value.node.span,
                            format!(
                                "lifecycle.{field} must be a {}",
                                if field == "prevent_destroy" {
                                    "boolean"
                                } else {
                                    "list of strings"
                                }
                            ),
                        )
                        .with_hint(
                            "like lifecycle = { prevent_destroy = true, ignore_changes = [\"labels\"] }",
                        ),
                    )
                }
                _ => self.unknown_key(
                    value,
                    field,
                    "lifecycle",
                    &["prevent_destroy", "ignore_changes"],
                ),
            }
        }
    }

    fn check_references(&mut self, configuration: &Configuration) {
        for module in &configuration.modules {
            let mut scopes: Vec<(&ValueExpr, Scope)> = Vec::new();
            for resource in &module.resources {
                if let Some(for_each) = &resource.for_each {
                    scopes.push((
                        for_each,
                        Scope {
                            module,
                            each: false,
                            env_scope: module.name.is_empty(),
                        },
                    ));
                }
                for value in resource.attributes.values() {
                    scopes.push((
                        value,
                        Scope {
                            module,
                            each: resource.for_each.is_some(),
                            env_scope: module.name.is_empty(),
                        },
                    ));
                }
                for (target, span) in &resource.depends_on {
                    let found = target
                        .split_once('.')
                        .is_some_and(|(kind, name)| module.resource(kind, name).is_some());
                    if !found {
                        self.diagnostics.push(
                            Diagnostic::new(
                                DiagnosticCode::UnknownReference,
                                span,
                                format!("depends_on: no resource `{target}` in this module"),
                            )
                            .with_hint("name a resource block of the same module as \"kind.name\""),
                        );
                    }
                }
            }
            for output in module.outputs.values() {
                scopes.push((
                    &output.value,
                    Scope {
                        module,
                        each: false,
                        env_scope: module.name.is_empty(),
                    },
                ));
            }
            for input in module.inputs.values() {
                if let Some(default) = &input.default {
                    scopes.push((
                        default,
                        Scope {
                            module,
                            each: false,
                            env_scope: false,
                        },
                    ));
                }
            }
            let root = &configuration.modules[0];
            for argument in module.arguments.values() {
                scopes.push((
                    argument,
                    Scope {
                        module: root,
                        each: false,
                        env_scope: true,
                    },
                ));
            }
            for (value, scope) in scopes {
                for traversal in value.traversals() {
                    if let Some(diagnostic) = check_traversal(configuration, &scope, traversal) {
                        self.diagnostics.push(diagnostic);
                    }
                }
                self.check_functions(value);
            }
        }
    }

    fn check_functions(&mut self, value: &ValueExpr) {
        use super::expr::{Expression, ExpressionKind, TemplatePart};
        fn walk(expression: &Expression, diagnostics: &mut Vec<Diagnostic>) {
            if let ExpressionKind::Call {
                function,
                arguments,
            } = &expression.kind
            {
                if !FUNCTIONS.contains(&function.as_str()) {
                    diagnostics.push(
                        Diagnostic::new(
                            DiagnosticCode::Expression,
                            &expression.span,
                            format!("unknown function `{function}`"),
                        )
                        .with_hint(format!("functions: {}", FUNCTIONS.join(", "))),
                    );
                }
                arguments
                    .iter()
                    .for_each(|argument| walk(argument, diagnostics));
            }
        }
        match value {
            ValueExpr::Template(parts, _) => {
                for part in parts {
                    if let TemplatePart::Interpolation(expression) = part {
                        walk(expression, &mut self.diagnostics);
                    }
                }
            }
            ValueExpr::List(items, _) => items.iter().for_each(|item| self.check_functions(item)),
            ValueExpr::Map(entries, _) => {
                entries.values().for_each(|item| self.check_functions(item))
            }
            ValueExpr::Literal(..) => {}
        }
    }
}

/// Where an expression is evaluated.
pub(crate) struct Scope<'a> {
    pub module: &'a ModuleInstance,
    pub each: bool,
    pub env_scope: bool,
}

/// Returns the block a reference points at (a graph edge), if it points at one.
pub(crate) fn referenced_block(
    configuration: &Configuration,
    scope: &Scope<'_>,
    traversal: &Traversal,
) -> Option<BlockId> {
    let attributes = traversal.leading_attributes();
    match traversal.root.as_str() {
        "input" if !scope.env_scope => {
            let name = attributes.first()?;
            scope
                .module
                .inputs
                .contains_key(*name)
                .then(|| BlockId::Input {
                    module: scope.module.name.clone(),
                    name: name.to_string(),
                })
        }
        "module" if scope.env_scope => {
            let (module, output) = (attributes.first()?, attributes.get(1)?);
            let instance = configuration
                .modules
                .iter()
                .find(|candidate| candidate.name == *module && !candidate.name.is_empty())?;
            instance
                .outputs
                .contains_key(*output)
                .then(|| BlockId::Output {
                    module: module.to_string(),
                    name: output.to_string(),
                })
        }
        kind if kinds::find(kind).is_some() => {
            let name = match traversal.steps.first()? {
                super::expr::Step::Attribute(name) => name,
                _ => return None,
            };
            scope
                .module
                .resource(kind, name)
                .map(|_| BlockId::Resource {
                    module: scope.module.name.clone(),
                    kind: kind.to_string(),
                    name: name.clone(),
                })
        }
        _ => None,
    }
}

fn check_traversal(
    configuration: &Configuration,
    scope: &Scope<'_>,
    traversal: &Traversal,
) -> Option<Diagnostic> {
    let attributes = traversal.leading_attributes();
    let reference = traversal.describe();
    let problem = |message: String, hint: String| {
        Some(
            Diagnostic::new(DiagnosticCode::UnknownReference, &traversal.span, message)
                .with_hint(hint),
        )
    };
    match traversal.root.as_str() {
        "var" if scope.env_scope => match attributes.first() {
            Some(name) if configuration.vars.contains_key(*name) => None,
            _ => problem(
                format!("`{reference}`: no such variable"),
                format!("declare it under [vars]; known: {}", configuration.vars.keys().cloned().collect::<Vec<_>>().join(", ")),
            ),
        },
        "var" => problem(format!("`{reference}`: modules read inputs, not variables"), "use input.NAME and pass the variable in the module call".into()),
        "input" if scope.env_scope => problem(format!("`{reference}`: an environment has no inputs"), "use var.NAME".into()),
        "input" => match referenced_block(configuration, scope, traversal) {
            Some(_) => None,
            None => problem(
                format!("`{reference}`: module `{}` declares no such input", scope.module.source),
                format!("declared inputs: {}", scope.module.inputs.keys().cloned().collect::<Vec<_>>().join(", ")),
            ),
        },
        "env" => match attributes.first() {
            Some(name) if ENV_KEYS.contains(name) => None,
            _ => problem(format!("`{reference}`: unknown env attribute"), format!("use one of env.{}", ENV_KEYS.join(", env."))),
        },
        "each" if !scope.each => problem(format!("`{reference}`: `each` is only defined in a resource with for_each"), "add for_each to the resource".into()),
        "each" => match attributes.first() {
            Some(name) if EACH_KEYS.contains(name) => None,
            _ => problem(format!("`{reference}`: use each.key or each.value"), "each has `key` and `value`".into()),
        },
        "module" if !scope.env_scope => problem(format!("`{reference}`: modules cannot read other modules"), "pass the value in through an input".into()),
        "module" => match referenced_block(configuration, scope, traversal) {
            Some(_) => None,
            None => problem(
                format!("`{reference}`: no such module output"),
                "reference module.NAME.OUTPUT where NAME is a [module.NAME] of this environment and OUTPUT one of its [output.…]".into(),
            ),
        },
        kind if kinds::find(kind).is_some() => match referenced_block(configuration, scope, traversal) {
            Some(_) => None,
            None => {
                let declared: Vec<String> = scope.module.resources.iter().map(|block| format!("{}.{}", block.kind, block.name)).collect();
                problem(
                    format!("`{reference}`: no resource `{kind}.{}` in this module", attributes.first().copied().unwrap_or("?")),
                    format!("resources here: {}", if declared.is_empty() { "none".into() } else { declared.join(", ") }),
                )
            }
        },
        other => problem(
            format!("`{reference}`: unknown name `{other}`"),
            "references start with var, input, env, each, module or a resource kind".into(),
        ),
    }
}

/// Returns the candidate closest to `name` by edit distance, when it is close enough to be a typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(score, candidate)| *score <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

/// Returns the environments of a project (directories under `envs/` with an env.toml).
pub fn list_envs(root: &Path) -> Vec<String> {
    list_dirs(&root.join("envs"))
        .into_iter()
        .filter(|env| root.join("envs").join(env).join("env.toml").exists())
        .collect()
}

fn list_dirs(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().is_dir())
                .map(|entry| entry.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Returns the span of a block for messages (re-exported for the graph).
pub(crate) fn block_span(configuration: &Configuration, block: &BlockId) -> Option<Span> {
    let module = configuration
        .modules
        .iter()
        .find(|module| module.name == block.module())?;
    match block {
        BlockId::Resource { kind, name, .. } => module
            .resource(kind, name)
            .map(|resource| resource.span.clone()),
        BlockId::Input { name, .. } => module.inputs.get(name).map(|input| input.span.clone()),
        BlockId::Output { name, .. } => module.outputs.get(name).map(|output| output.span.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        root
    }

    const HEADER: &str = "[env]\nname = \"t\"\nproject = \"p\"\nregion = \"r\"\n";

    fn codes(error: &ConfigError) -> Vec<DiagnosticCode> {
        error
            .diagnostics
            .iter()
            .map(|diagnostic| diagnostic.code)
            .collect()
    }

    #[test]
    fn a_module_instance_is_loaded_with_its_arguments() {
        let root = project(&[
            (
                "envs/t/env.toml",
                &format!(
                    "{HEADER}[vars]\nn = 3\n[module.app]\nsource = \"m\"\nname = \"${{var.n}}\"\n"
                ),
            ),
            (
                "modules/m/module.toml",
                "[input.name]\ntype = \"number\"\n[resource.secret.s]\nsecret_id = \"S${input.name}\"\n[output.id]\nvalue = \"${secret.s.name}\"\n",
            ),
        ]);
        let configuration = load(root.path(), "t").expect("valid");
        assert_eq!(configuration.modules.len(), 2);
        assert_eq!(configuration.vars["n"], crate::value::Value::Integer(3));
        let module = &configuration.modules[1];
        assert_eq!(module.address_prefix(), "module.app.");
        assert!(module.arguments.contains_key("name"));
        assert!(module.resource("secret", "s").is_some());
    }

    #[test]
    fn references_are_checked_per_scope() {
        let root = project(&[
            (
                "envs/t/env.toml",
                &format!(
                    "{HEADER}[module.app]\nsource = \"m\"\n[output.bad]\nvalue = \"${{module.app.missing}}\"\n"
                ),
            ),
            (
                "modules/m/module.toml",
                "[resource.secret.s]\nsecret_id = \"${var.x}\"\nvalue = \"${each.key}\"\nlabels = { a = \"${input.nope}\" }\nannotations = { b = \"${foo.bar}\" }\n",
            ),
        ]);
        let error = load(root.path(), "t").expect_err("invalid");
        assert_eq!(
            codes(&error),
            vec![DiagnosticCode::UnknownReference; 5],
            "{error}"
        );
        let text = error.to_string();
        assert!(
            text.contains("modules read inputs, not variables"),
            "{text}"
        );
        assert!(
            text.contains("`each` is only defined in a resource with for_each"),
            "{text}"
        );
        assert!(text.contains("declares no such input"), "{text}");
        assert!(text.contains("unknown name `foo`"), "{text}");
        assert!(text.contains("no such module output"), "{text}");
    }

    #[test]
    fn unknown_functions_and_literal_type_errors_are_reported() {
        let root = project(&[(
            "envs/t/env.toml",
            &format!(
                "{HEADER}[resource.secret.s]\nsecret_id = \"${{shout(env.name)}}\"\nlabels = 5\n"
            ),
        )]);
        let error = load(root.path(), "t").expect_err("invalid");
        assert!(
            codes(&error).contains(&DiagnosticCode::Expression),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("`labels` must be a map of strings (got integer)"),
            "{error}"
        );
    }

    #[test]
    fn an_env_file_without_its_env_table_is_an_error_at_line_one() {
        for text in ["", "# only a comment\n", "[vars]\nx = 1\n"] {
            let root = project(&[("envs/t/env.toml", text)]);
            let error = load(root.path(), "t").expect_err("no [env]");
            assert_eq!(codes(&error), vec![DiagnosticCode::MissingField], "{error}");
            let diagnostic = &error.diagnostics[0];
            assert_eq!(
                diagnostic.span.as_ref().map(ToString::to_string).as_deref(),
                Some("envs/t/env.toml:1:1")
            );
            assert!(
                diagnostic
                    .hint
                    .as_deref()
                    .is_some_and(|hint| hint.contains("[env] with name = \"t\"")),
                "{error}"
            );
        }
        let root = project(&[(
            "envs/t/env.toml",
            "[env]\nname = \"t\"\nproject = \" \"\nregion = \"r\"\n",
        )]);
        let error = load(root.path(), "t").expect_err("empty project");
        assert!(
            error
                .to_string()
                .contains("envs/t/env.toml:3:11: error[invalid-value]: env.project is empty"),
            "{error}"
        );
    }

    #[test]
    fn the_env_name_must_match_its_directory() {
        let root = project(&[(
            "envs/t/env.toml",
            "[env]\nname = \"prod\"\nproject = \"p\"\nregion = \"r\"\n",
        )]);
        let error = load(root.path(), "t").expect_err("mismatch");
        assert!(
            error
                .to_string()
                .contains("env.name is `prod` but the file is envs/t/env.toml"),
            "{error}"
        );
    }
}
