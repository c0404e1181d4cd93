//! Workflows: a registry with `.quilt/workflows/config.yml` governs the packages
//! written to it, exactly as quilt3 8.0.0 (`quilt3.workflows`) does it
//! (docs/reference.md, Tools: package_create, workflows).
//!
//! [`load`] reads the config (YAML as PyYAML reads it, checked against the rules of
//! quilt3's config schema), picks the workflow a call asks for, reads the JSON
//! Schemas it names from S3 (draft 7, as quilt3) and gives a [`Workflow`]; its
//! [`Workflow::validate`] checks a prospective package (name, message, user
//! metadata, entries) and gives the `workflow` object of its manifest, or every
//! violation with its JSON pointer. The layer above authorizes each schema's bucket
//! ([`SchemaGate`]), since only the config says which buckets those are.

mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};

use super::error::QuiltError;
use super::manifest::Record;
use super::physical_key;
use crate::s3::{S3, S3ErrorKind, S3Uri};

/// Where a registry keeps its workflows config.
pub(crate) const CONFIG_KEY: &str = ".quilt/workflows/config.yml";
/// The most bytes of a config or a schema that is read.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// The most values a config's YAML may expand to (aliases included).
const MAX_YAML_NODES: usize = 200_000;
/// Violations listed in a message (all are counted).
const MAX_LISTED: usize = 50;
/// Violations counted before giving up counting.
const MAX_COUNTED: usize = 10_000;
/// The longest message of one violation, in characters.
const MAX_MESSAGE_CHARS: usize = 300;
/// The longest a config's or schema's body may take to arrive.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The newest config version quilt3 8.0.0 reads.
const SUPPORTED_VERSION: (u64, u64, u64) = (1, 1, 0);
/// The one meta-schema a workflow schema may name, as quilt3.
const DRAFT7: &str = "http://json-schema.org/draft-07/schema#";

/// The rules of quilt3's config schema.
const CONFIG_SCHEMA: &str = include_str!("config.schema.json");

/// Which workflow a package asks for: the `workflow` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Absent: the config's `default_workflow`.
    Default,
    /// `null`: none (only where `is_workflow_required` is false).
    Skip,
    /// A workflow id of the config.
    Named(String),
}

/// Authorizes reading a schema the config names, before it is read: its bucket, and
/// whether the URL pins a version. The tools layer answers from the caller's token.
pub(crate) trait SchemaGate: Send + Sync {
    /// `Ok` when the caller may read an object of `bucket` (a version of it when
    /// `versioned`).
    fn check(&self, bucket: &str, versioned: bool) -> Result<(), QuiltError>;
}

/// One way a package fails its workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// A JSON pointer into the package: `/package_name`, `/message`,
    /// `/metadata/…`, `/entries/3/size`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Every way a package fails its workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violations {
    /// Which workflow, said for the message.
    pub workflow: String,
    /// The first [`MAX_LISTED`] violations.
    pub listed: Vec<Violation>,
    /// How many in all (at most [`MAX_COUNTED`]).
    pub total: usize,
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.total == 1 { "" } else { "s" };
        write!(
            f,
            "the package does not pass {} ({} violation{s}):",
            self.workflow, self.total
        )?;
        for v in &self.listed {
            write!(f, "\n- {}: {}", v.pointer, v.message)?;
        }
        if self.total > self.listed.len() {
            write!(f, "\n- and {} more", self.total - self.listed.len())?;
        }
        Ok(())
    }
}

impl From<Violations> for QuiltError {
    fn from(v: Violations) -> QuiltError {
        QuiltError::Invalid(v.to_string())
    }
}

/// A JSON Schema read and compiled: shared by the ids whose URLs name it.
struct Compiled {
    /// Where it was read: `s3://bucket/key?versionId=…` (the version S3 answered with).
    uri: String,
    validator: jsonschema::Validator,
}

/// A schema of the config's `schemas`, by its id.
#[derive(Clone)]
struct Schema {
    id: String,
    compiled: Arc<Compiled>,
}

/// The workflow a package is checked against.
pub(crate) struct Workflow {
    id: Option<String>,
    config_uri: String,
    handle_pattern: Option<(String, fancy_regex::Regex)>,
    message_required: bool,
    metadata: Option<Schema>,
    entries: Option<Schema>,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("id", &self.id)
            .field("config", &self.config_uri)
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// The workflow's id; `None` for the explicit choice of none.
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The manifest's `workflow` object, as quilt3 writes it: `id`, `config` (the
    /// config's URL with the version read), and `schemas` (id → URL with version)
    /// when the workflow named any.
    pub(crate) fn manifest_object(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            "id".into(),
            self.id.clone().map_or(Value::Null, Value::String),
        );
        out.insert("config".into(), Value::String(self.config_uri.clone()));
        let mut schemas = Map::new();
        for schema in self.metadata.iter().chain(&self.entries) {
            schemas.insert(
                schema.id.clone(),
                Value::String(schema.compiled.uri.clone()),
            );
        }
        if !schemas.is_empty() {
            out.insert("schemas".into(), Value::Object(schemas));
        }
        Value::Object(out)
    }

    /// Whether the entries are checked (then [`Workflow::check_entries`] needs them).
    pub(crate) fn checks_entries(&self) -> bool {
        self.entries.is_some()
    }

    fn describe(&self) -> String {
        match &self.id {
            Some(id) => format!("workflow {id:?} of {}", self.config_uri),
            None => format!("the workflows config {}", self.config_uri),
        }
    }

    /// What is wrong with the name, message and user metadata (`None`: no
    /// `user_meta`, checked as `{}` as quilt3 does), as quilt3 checks them.
    pub(crate) fn check_package(
        &self,
        name: &str,
        message: Option<&str>,
        user_meta: Option<&Value>,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        if self.message_required && message.is_none_or(str::is_empty) {
            out.push(Violation {
                pointer: "/message".into(),
                message: "the workflow requires a commit message".into(),
            });
        }
        if let Some((pattern, regex)) = &self.handle_pattern {
            // Python's `re.search`: anywhere in the name. A pattern that fails to
            // run (backtracking limit) does not match.
            if !regex.is_match(name).unwrap_or(false) {
                out.push(Violation {
                    pointer: "/package_name".into(),
                    message: format!(
                        "{name:?} does not match the workflow's handle_pattern {pattern:?}"
                    ),
                });
            }
        }
        if let Some(schema) = &self.metadata {
            let empty = Value::Object(Map::new());
            let meta = user_meta.unwrap_or(&empty);
            schema_violations(schema, meta, "/metadata", &mut out);
        }
        out
    }

    /// What is wrong with the entries: `[{logical_key, size, meta}]` in the package's
    /// order ([`entries_value`]), checked against the workflow's `entries_schema`.
    pub(crate) fn check_entries(&self, entries: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(schema) = &self.entries {
            schema_violations(schema, entries, "/entries", &mut out);
        }
        out
    }

    /// Checks a whole prospective package: on success the manifest's `workflow`
    /// object, else every violation. `entries` is only read when the workflow
    /// checks entries.
    pub(crate) fn validate<'r>(
        &self,
        name: &str,
        message: Option<&str>,
        user_meta: Option<&Value>,
        entries: impl IntoIterator<Item = &'r Record>,
    ) -> Result<Value, Violations> {
        let mut found = self.check_package(name, message, user_meta);
        if self.checks_entries() {
            found.extend(self.check_entries(&entries_value(entries)));
        }
        self.verdict(found)
    }

    /// The manifest's `workflow` object when `found` is empty, else the violations.
    pub(crate) fn verdict(&self, found: Vec<Violation>) -> Result<Value, Violations> {
        if found.is_empty() {
            return Ok(self.manifest_object());
        }
        let total = found.len();
        Err(Violations {
            workflow: self.describe(),
            listed: found.into_iter().take(MAX_LISTED).collect(),
            total,
        })
    }
}

/// The entries as quilt3 hands them to an `entries_schema`: `[{logical_key, size,
/// meta}]`, `meta` being each entry's `user_meta` (`{}` when it has none).
pub(crate) fn entries_value<'r>(records: impl IntoIterator<Item = &'r Record>) -> Value {
    Value::Array(
        records
            .into_iter()
            .map(|record| {
                let meta = record
                    .meta()
                    .get("user_meta")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                let mut obj = Map::new();
                obj.insert(
                    "logical_key".into(),
                    Value::String(record.logical_key().into()),
                );
                obj.insert("size".into(), Value::from(record.size()));
                obj.insert("meta".into(), meta);
                Value::Object(obj)
            })
            .collect(),
    )
}

fn schema_violations(schema: &Schema, instance: &Value, prefix: &str, out: &mut Vec<Violation>) {
    for error in schema
        .compiled
        .validator
        .iter_errors(instance)
        .take(MAX_COUNTED)
    {
        let mut message = error.to_string();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            message = message.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
        }
        out.push(Violation {
            pointer: format!("{prefix}{}", error.instance_path().as_str()),
            message: format!("{message} (schema {:?})", schema.id),
        });
    }
}

// ---------------------------------------------------------------------------------
// Loading

/// A config that quilt3 would refuse too.
fn bad_config(uri: &str, problem: impl fmt::Display) -> QuiltError {
    QuiltError::Invalid(format!(
        "the registry's workflows config {uri} is not usable: {problem}; quilt3 refuses it too, so fix the config (or ask its owner to)"
    ))
}

/// Reads the registry's workflows config and the workflow `choice` names in it,
/// with its schemas (each authorized by `gate` before it is read). `None` when the
/// registry has no config and no workflow was asked for.
pub(crate) async fn load(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    choice: &Choice,
    gate: &dyn SchemaGate,
) -> Result<Option<Workflow>, QuiltError> {
    let plain_uri = physical_key(bucket, CONFIG_KEY, None);
    let Some((bytes, version)) = get_document(s3, bucket, CONFIG_KEY, None, "config").await? else {
        return match choice {
            Choice::Default => Ok(None),
            Choice::Skip => Err(QuiltError::Invalid(format!(
                "`workflow: null` asks for no workflow, but s3://{bucket} has no workflows config ({CONFIG_KEY}); quilt3 refuses this too: leave `workflow` out"
            ))),
            Choice::Named(id) => Err(QuiltError::Invalid(format!(
                "`workflow` names {id:?}, but s3://{bucket} has no workflows config ({CONFIG_KEY}): leave `workflow` out"
            ))),
        };
    };
    let config_uri = physical_key(bucket, CONFIG_KEY, version.as_deref());
    let config = parse_config(&bytes, &plain_uri)?;
    choose(&config, &config_uri, choice, s3, gate)
        .await
        .map(Some)
}

/// The config's text, read as YAML, checked against quilt3's config schema and
/// version.
fn parse_config(bytes: &[u8], uri: &str) -> Result<Value, QuiltError> {
    let text = std::str::from_utf8(bytes).map_err(|_| bad_config(uri, "it is not UTF-8"))?;
    let config = yaml::safe_load(text, MAX_YAML_NODES)
        .map_err(|e| bad_config(uri, format_args!("it is not YAML as quilt3 reads it: {e}")))?;
    let validator = CONFIG_VALIDATOR
        .as_ref()
        .map_err(|e| QuiltError::Internal(format!("the workflows config schema: {e}")))?;
    let errors: Vec<String> = validator
        .iter_errors(&config)
        .take(MAX_LISTED)
        .map(|e| {
            let at = e.instance_path().as_str().to_owned();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if !errors.is_empty() {
        return Err(bad_config(
            uri,
            format_args!("it fails quilt3's config schema: {}", errors.join("; ")),
        ));
    }
    let version = match &config["version"] {
        Value::Object(v) => &v["base"],
        other => other,
    };
    let text = version.as_str().unwrap_or("").trim();
    let mut parts = [0u64; 3];
    for (slot, part) in parts.iter_mut().zip(text.split('.')) {
        *slot = part.parse().unwrap_or(u64::MAX);
    }
    if (parts[0], parts[1], parts[2]) > SUPPORTED_VERSION {
        return Err(QuiltError::NotSupported(format!(
            "the registry's workflows config {uri} has version {text}, newer than the 1.1 that quilt3 8.0.0 (and so quilt-mcp) reads"
        )));
    }
    Ok(config)
}

/// Why quilt3's config schema, built into the binary, did not compile (a bug, not input).
#[derive(Debug, thiserror::Error)]
enum ConfigSchemaError {
    #[error("it is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("it is not a draft-7 schema: {0}")]
    Schema(String),
}

static CONFIG_VALIDATOR: LazyLock<Result<jsonschema::Validator, ConfigSchemaError>> =
    LazyLock::new(|| {
        let schema: Value = serde_json::from_str(CONFIG_SCHEMA)?;
        draft7(&schema).map_err(|e| ConfigSchemaError::Schema(e.to_string()))
    });

/// A draft-7 validator as Python's `jsonschema.Draft7Validator` checks: `format` and
/// `content*` are annotations, never assertions; nothing is fetched.
fn draft7(schema: &Value) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    jsonschema::draft7::options()
        .should_validate_formats(false)
        .without_content_media_type_support("application/json")
        .without_content_encoding_support("base64")
        .build(schema)
}

/// Picks the workflow of `choice` in a checked `config`, as quilt3's
/// `get_workflow_validator` does, and reads its schemas.
async fn choose(
    config: &Value,
    config_uri: &str,
    choice: &Choice,
    s3: &aws_sdk_s3::Client,
    gate: &dyn SchemaGate,
) -> Result<Workflow, QuiltError> {
    let id = match choice {
        Choice::Default => config
            .get("default_workflow")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Choice::Skip => None,
        Choice::Named(id) => Some(id.clone()),
    };
    let workflows = config
        .get("workflows")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let known = || {
        workflows
            .keys()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let empty = Map::new();
    let data = match &id {
        None => {
            let required = config
                .get("is_workflow_required")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if required {
                return Err(QuiltError::Invalid(format!(
                    "the registry's workflows config {config_uri} requires a workflow and names no default_workflow to use: pass `workflow`, one of {}",
                    known()
                )));
            }
            &empty
        }
        Some(id) => workflows.get(id).and_then(Value::as_object).ok_or_else(|| {
            QuiltError::Invalid(format!(
                "there is no workflow {id:?} in the registry's workflows config {config_uri}: pass `workflow`, one of {}",
                known()
            ))
        })?,
    };
    let handle_pattern = match data.get("handle_pattern").and_then(Value::as_str) {
        Some(pattern) if !pattern.is_empty() => {
            let regex = fancy_regex::Regex::new(pattern).map_err(|e| {
                bad_config(
                    config_uri,
                    format_args!("its handle_pattern {pattern:?} is not a regular expression: {e}"),
                )
            })?;
            Some((pattern.to_owned(), regex))
        }
        _ => None,
    };
    let mut loader = SchemaLoader {
        config,
        config_uri,
        s3,
        gate,
        by_url: HashMap::new(),
    };
    let metadata = match data.get("metadata_schema").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Some(loader.load(id).await?),
        _ => None,
    };
    let entries = match data.get("entries_schema").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => match &metadata {
            Some(same) if same.id == id => Some(same.clone()),
            _ => Some(loader.load(id).await?),
        },
        _ => None,
    };
    Ok(Workflow {
        id,
        config_uri: config_uri.to_owned(),
        handle_pattern,
        message_required: data
            .get("is_message_required")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        metadata,
        entries,
    })
}

/// Reads the schemas of one workflow, each URL once.
struct SchemaLoader<'c> {
    config: &'c Value,
    config_uri: &'c str,
    s3: &'c aws_sdk_s3::Client,
    gate: &'c dyn SchemaGate,
    /// The schema read from each URL (as quilt3 normalizes it), by URL.
    by_url: HashMap<String, Arc<Compiled>>,
}

/// An `s3://` URL as quilt3's `PhysicalKey.from_url` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SchemaUrl {
    bucket: String,
    key: String,
    version_id: Option<String>,
}

/// Why a workflow's schema URL or schema is not one quilt3 would use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct SchemaProblem(String);

fn parse_schema_url(url: &str) -> Result<SchemaUrl, SchemaProblem> {
    let (scheme, rest) = url.split_once(':').ok_or_else(|| {
        SchemaProblem(format!(
            "{url:?} has no scheme; workflow schemas are s3:// URLs"
        ))
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        return Err(SchemaProblem(format!(
            "{url:?} is a local file, which cannot be used with a registry in S3"
        )));
    }
    if scheme != "s3" {
        return Err(SchemaProblem(format!(
            "{url:?} is a {scheme}: URL; workflow schemas are read from s3:// URLs only"
        )));
    }
    let rest = rest
        .strip_prefix("//")
        .ok_or_else(|| SchemaProblem(format!("{url:?} has no bucket")))?;
    // The fragment is dropped, the query holds at most a versionId.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(SchemaProblem(format!("{url:?} has no bucket")));
    }
    let key = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    if key.is_empty() {
        return Err(SchemaProblem(format!("{url:?} names no object")));
    }
    let mut version_id = None;
    for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        // Python's parse_qs drops pairs with blank values.
        if value.is_empty() {
            continue;
        }
        if decode(name) == "versionId" {
            version_id.get_or_insert_with(|| decode(value));
        } else {
            return Err(SchemaProblem(format!(
                "{url:?} has a query other than versionId"
            )));
        }
    }
    Ok(SchemaUrl {
        bucket: bucket.to_owned(),
        key,
        version_id,
    })
}

impl SchemaLoader<'_> {
    async fn load(&mut self, id: &str) -> Result<Schema, QuiltError> {
        let url = self
            .config
            .get("schemas")
            .and_then(|s| s.get(id))
            .and_then(|s| s.get("url"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad_config(
                    self.config_uri,
                    format_args!("there is no {id:?} in its schemas"),
                )
            })?;
        let parsed = parse_schema_url(url)
            .map_err(|e| bad_config(self.config_uri, format_args!("schema {id:?}: {e}")))?;
        let normalized = physical_key(&parsed.bucket, &parsed.key, parsed.version_id.as_deref());
        if let Some(compiled) = self.by_url.get(&normalized) {
            return Ok(Schema {
                id: id.to_owned(),
                compiled: compiled.clone(),
            });
        }
        self.gate
            .check(&parsed.bucket, parsed.version_id.is_some())?;
        let (bytes, version) = get_document(
            self.s3,
            &parsed.bucket,
            &parsed.key,
            parsed.version_id.as_deref(),
            "schema",
        )
        .await?
        .ok_or_else(|| {
            bad_config(
                self.config_uri,
                format_args!("its schema {id:?} at {normalized} does not exist"),
            )
        })?;
        let schema = parse_schema(&bytes, &normalized)
            .map_err(|e| bad_config(self.config_uri, format_args!("schema {id:?}: {e}")))?;
        let validator = draft7(&schema).map_err(|e| {
            bad_config(
                self.config_uri,
                format_args!("schema {id:?} at {normalized} is not valid: {e}"),
            )
        })?;
        let compiled = Arc::new(Compiled {
            uri: physical_key(
                &parsed.bucket,
                &parsed.key,
                version.or(parsed.version_id).as_deref(),
            ),
            validator,
        });
        self.by_url.insert(normalized, compiled.clone());
        Ok(Schema {
            id: id.to_owned(),
            compiled,
        })
    }
}

/// A schema's JSON as quilt3 accepts it: no `$ref` anywhere, `$schema` (if any)
/// draft 7, and valid against draft 7's meta-schema.
fn parse_schema(bytes: &[u8], uri: &str) -> Result<Value, SchemaProblem> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| SchemaProblem(format!("{uri} is not UTF-8")))?;
    let schema: Value =
        serde_json::from_str(text).map_err(|e| SchemaProblem(format!("{uri} is not JSON: {e}")))?;
    if has_ref(&schema, 0) {
        return Err(SchemaProblem(format!(
            "{uri} uses $ref, which quilt3 does not support in workflow schemas"
        )));
    }
    if let Some(meta) = schema.as_object().and_then(|o| o.get("$schema")) {
        match meta.as_str() {
            Some(DRAFT7) => {}
            Some(other) => {
                return Err(SchemaProblem(format!(
                    "{uri} names the meta-schema {other:?}; quilt3 supports only {DRAFT7:?}"
                )));
            }
            None => return Err(SchemaProblem(format!("{uri}: $schema must be a string"))),
        }
    }
    jsonschema::draft7::meta::validate(&schema)
        .map_err(|e| SchemaProblem(format!("{uri} is not a valid draft-7 JSON Schema: {e}")))?;
    Ok(schema)
}

/// Whether any object in `value` has a `$ref` key (quilt3 refuses every such object,
/// wherever it is).
fn has_ref(value: &Value, depth: usize) -> bool {
    if depth > 256 {
        return true;
    }
    match value {
        Value::Object(map) => {
            map.contains_key("$ref") || map.values().any(|v| has_ref(v, depth + 1))
        }
        Value::Array(items) => items.iter().any(|v| has_ref(v, depth + 1)),
        _ => false,
    }
}

/// An object of at most [`MAX_DOCUMENT_BYTES`] and the version S3 answered with;
/// `None` when it does not exist.
async fn get_document(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    what: &str,
) -> Result<Option<(Vec<u8>, Option<String>)>, QuiltError> {
    let shown = physical_key(bucket, key, version_id);
    let too_large = || {
        QuiltError::TooLarge(format!(
            "the workflows {what} {shown} is larger than {MAX_DOCUMENT_BYTES} bytes, more than quilt-mcp reads"
        ))
    };
    let uri = S3Uri {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: version_id.map(str::to_owned),
    };
    let mut body = match S3::new(s3).open(&uri, MAX_DOCUMENT_BYTES as u64).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) if matches!(e.kind, S3ErrorKind::OverCap { .. }) => return Err(too_large()),
        Err(e) => return Err(e.into()),
    };
    let version = body.version_id.clone();
    let read = async {
        let mut bytes = Vec::new();
        while let Some(piece) = body.next_chunk().await? {
            if bytes.len() + piece.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&piece);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| {
            QuiltError::interrupted(
                shown.clone(),
                format!(
                    "the body did not arrive within {} s",
                    READ_TIMEOUT.as_secs()
                ),
            )
        })??;
    Ok(Some((bytes, version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(yaml_text: &str) -> Result<Value, QuiltError> {
        parse_config(yaml_text.as_bytes(), "s3://b/.quilt/workflows/config.yml")
    }

    #[test]
    fn the_config_schema_compiles() {
        assert!(
            CONFIG_VALIDATOR.is_ok(),
            "{:?}",
            CONFIG_VALIDATOR.as_ref().err()
        );
    }

    #[test]
    fn configs_are_checked_as_quilt3_checks_them() {
        let good = [
            "version: '1'\nworkflows:\n  a: {name: A}\n",
            "version: \"1.1\"\nworkflows:\n  a: {name: A}\n",
            "version: {base: '1', catalog: '1'}\nworkflows:\n  a: {name: A}\n",
            "version: '1'\nis_workflow_required: no\nworkflows:\n  a_b-1: {name: A, catalog: {x: 2024-01-01}}\n",
            "version: '1'\nworkflows:\n  a: {name: A}\nschemas:\n  s: {url: 'http://x', other: 1}\nsuccessors:\n  s3://x: {title: X}\n",
            "version: '1'\nworkflows:\n  a: {name: A, handle_pattern: '[', metadata_schema: zzz}\n",
        ];
        for text in good {
            config(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let bad = [
            ("", "fails quilt3's config schema"),
            ("version: 1\nworkflows:\n  a: {name: A}\n", "/version"),
            ("version: 1.0\nworkflows:\n  a: {name: A}\n", "/version"),
            ("version: '01'\nworkflows:\n  a: {name: A}\n", "/version"),
            ("version: '1'\nworkflows: {}\n", "/workflows"),
            ("version: '1'\nworkflows:\n  a: {}\n", "/workflows/a"),
            (
                "version: '1'\nworkflows:\n  a: {name: ''}\n",
                "/workflows/a/name",
            ),
            ("version: '1'\nworkflows:\n  1a: {name: A}\n", "/workflows"),
            (
                "version: '1'\nworkflows:\n  a: {name: A, extra: 1}\n",
                "/workflows/a",
            ),
            ("version: '1'\nworkflows:\n  a: {name: A}\nextra: 1\n", "/"),
            (
                "version: '1'\nis_workflow_required: 'no'\nworkflows:\n  a: {name: A}\n",
                "/is_workflow_required",
            ),
            (
                "version: '1'\nworkflows:\n  a: {name: A}\nschemas: {s: {}}\n",
                "/schemas/s",
            ),
            (
                "version: '1'\nworkflows:\n  a: {name: A, created: 2024-01-01}\n",
                "/workflows/a",
            ),
            (
                "version: '1'\nworkflows:\n  a: {name: 2024-01-01}\n",
                "/workflows/a/name",
            ),
        ];
        for (text, pointer) in bad {
            let error = config(text).unwrap_err().to_string();
            assert!(error.contains(pointer), "{text}: {error}");
        }
        let newer = config("version: '1.2'\nworkflows:\n  a: {name: A}\n").unwrap_err();
        assert!(matches!(newer, QuiltError::NotSupported(_)), "{newer}");
        assert!(config("version: '2'\nworkflows:\n  a: {name: A}\n").is_err());
    }

    #[test]
    fn schema_urls_as_quilt3_parses_them() {
        let ok = |url: &str| parse_schema_url(url).unwrap();
        assert_eq!(
            ok("s3://b/dir/a%20b.json?versionId=v%2B1#frag"),
            SchemaUrl {
                bucket: "b".into(),
                key: "dir/a b.json".into(),
                version_id: Some("v+1".into())
            }
        );
        assert_eq!(ok("S3://b/k?versionId=").version_id, None);
        for bad in [
            "https://example.com/s.json",
            "file:///tmp/s.json",
            "s3://",
            "s3:///k",
            "s3://b",
            "s3://b/k?x=1",
            "schema.json",
        ] {
            assert!(parse_schema_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemas_as_quilt3_accepts_them() {
        let parse = |v: Value| parse_schema(v.to_string().as_bytes(), "s3://b/s.json");
        assert!(parse(json!({"type": "object"})).is_ok());
        assert!(parse(json!({"$schema": DRAFT7, "type": "object"})).is_ok());
        assert!(parse(json!(true)).is_ok());
        for bad in [
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema"}),
            json!({"$schema": 7}),
            json!({"properties": {"a": {"$ref": "#/definitions/x"}}}),
            json!({"enum": [{"$ref": 1}]}),
            json!({"type": "nonsense"}),
            json!({"pattern": "("}),
            json!(5),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        assert!(parse_schema(b"{nope", "s3://b/s.json").is_err());
    }

    fn workflow(metadata: Option<Value>, entries: Option<Value>) -> Workflow {
        let schema = |id: &str, v: Value| Schema {
            id: id.into(),
            compiled: Arc::new(Compiled {
                uri: format!("s3://b/{id}.json?versionId=v1"),
                validator: draft7(&v).unwrap(),
            }),
        };
        Workflow {
            id: Some("w".into()),
            config_uri: "s3://b/.quilt/workflows/config.yml?versionId=c1".into(),
            handle_pattern: Some(("^team/".into(), fancy_regex::Regex::new("^team/").unwrap())),
            message_required: true,
            metadata: metadata.map(|v| schema("meta", v)),
            entries: entries.map(|v| schema("ents", v)),
        }
    }

    #[test]
    fn a_package_gets_every_violation_with_its_pointer() {
        let w = workflow(
            Some(
                json!({"type": "object", "required": ["author"], "properties": {"n": {"type": "integer"}}}),
            ),
            Some(json!({"type": "array", "items": {"properties": {"size": {"maximum": 10}}}})),
        );
        let record = |lk: &str, size: u64| {
            Record::from_object(
                json!({"logical_key": lk, "size": size, "hash": {"type": "SHA256", "value": "00"}, "meta": {}})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
        };
        let records = [record("a", 5), record("b", 50)];
        let meta = json!({"n": "x"});
        let error = w
            .validate("other/pkg", Some(""), Some(&meta), &records)
            .unwrap_err();
        let pointers: Vec<&str> = error.listed.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/message",
                "/package_name",
                "/metadata",
                "/metadata/n",
                "/entries/1/size"
            ],
            "{error}"
        );
        assert_eq!(error.total, 5);
        let text = error.to_string();
        assert!(
            text.contains("workflow \"w\" of s3://b/.quilt/workflows/config.yml?versionId=c1"),
            "{text}"
        );

        let ok = w
            .validate(
                "team/pkg",
                Some("m"),
                Some(&json!({"author": "a"})),
                &records[..1],
            )
            .unwrap();
        assert_eq!(
            ok,
            json!({"id": "w", "config": "s3://b/.quilt/workflows/config.yml?versionId=c1",
                   "schemas": {"meta": "s3://b/meta.json?versionId=v1", "ents": "s3://b/ents.json?versionId=v1"}})
        );
        // No user_meta is checked as {}.
        let none = w.check_package("team/pkg", Some("m"), None);
        assert_eq!(none.len(), 1, "{none:?}");
        assert_eq!(none[0].pointer, "/metadata");
    }

    #[test]
    fn formats_and_content_are_annotations_as_in_python() {
        let v = draft7(&json!({"format": "email", "contentMediaType": "application/json", "contentEncoding": "base64"})).unwrap();
        assert!(v.is_valid(&json!("not an email, not base64 {")));
    }

    #[test]
    fn the_workflow_object_without_schemas() {
        let mut w = workflow(None, None);
        w.id = None;
        assert_eq!(
            w.manifest_object(),
            json!({"id": null, "config": "s3://b/.quilt/workflows/config.yml?versionId=c1"})
        );
    }
}
